-- A user's own daily AI token quota, set by an admin (AdminService.SetAiQuota); without a row
-- the default_daily_ai_token_quota setting applies. Deleted with the user.
CREATE TABLE ai_quotas (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    daily_tokens BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
