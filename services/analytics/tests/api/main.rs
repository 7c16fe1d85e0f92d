//! Service tests: identity and profiles (emitting through their outboxes) and analytics, served
//! by the real server builder on 127.0.0.1 ports, called through the generated clients with
//! real tokens. SQLite and the in-process cache by default; PostgreSQL and Redis with
//! `TT_TEST_DATABASE_URL` / `TT_TEST_REDIS_URL`.

mod ingest;
mod pipeline;
mod reports;
mod support;
