//! EventService: a learner's timeline and streamed exports.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tt_common::{
    auth::{principal, read_target},
    clock::from_timestamp,
    storage::Page,
};
use tt_proto::analytics::v1::{self as pb, event_service_server::EventService};

use super::{Api, event, types, violations};
use crate::{
    DOMAIN,
    domain::export::Format,
    store::events::{Cursor, Filter},
};

/// Rows read per query while exporting.
const EXPORT_PAGE: i64 = 1000;
/// Bytes per export message.
const CHUNK: usize = 64 * 1024;

#[tonic::async_trait]
impl EventService for Api {
    async fn list_timeline_events(
        &self,
        request: Request<pb::ListTimelineEventsRequest>,
    ) -> Result<Response<pb::ListTimelineEventsResponse>, Status> {
        let (user, _) = read_target(&request, &request.get_ref().user_id, DOMAIN)?;
        let req = request.into_inner();
        let mut v = violations();
        types(&mut v, &req.types);
        let scope = format!("timeline:{user}:{}", req.types.join(","));
        let page: Page<'_, Cursor> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let filter = Filter { subject: Some(user), types: req.types, ..Filter::default() };
        let mut rows = self.store.events_page(&filter, page.after.as_ref(), true, page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| (r.time, r.id.clone()));
        Ok(Response::new(pb::ListTimelineEventsResponse {
            events: rows.into_iter().map(event).collect(),
            next_page_token,
        }))
    }

    type ExportEventsStream = ReceiverStream<Result<pb::ExportEventsResponse, Status>>;

    async fn export_events(
        &self,
        request: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let caller = principal(&request)?;
        // Admins export anyone's events; a learner only their own.
        let subject = if caller.is_admin() && request.get_ref().user_id.is_empty() {
            None
        } else {
            Some(read_target(&request, &request.get_ref().user_id, DOMAIN)?.0)
        };
        let req = request.into_inner();
        let mut v = violations();
        let format = match pb::ExportFormat::try_from(req.format) {
            Ok(pb::ExportFormat::Csv) => Some(Format::Csv),
            Ok(pb::ExportFormat::Jsonl) => Some(Format::JsonLines),
            _ => {
                v.add("format", "must be EXPORT_FORMAT_CSV or EXPORT_FORMAT_JSONL");
                None
            }
        };
        types(&mut v, &req.types);
        let from = req.start_time.as_ref().map(from_timestamp);
        let to = req.end_time.as_ref().map(from_timestamp);
        if let (Some(a), Some(b)) = (from, to) {
            v.check(a < b, "end_time", "must be after start_time");
        }
        let format = super::finish(v, format)?;
        let filter = Filter { subject, types: req.types, from, to };
        // Two chunks in flight at most: memory stays flat however large the export.
        let (tx, rx) = mpsc::channel(2);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut chunk = String::from(format.header());
            let mut line = String::new();
            let mut rows = 0i64;
            let mut cursor = None;
            loop {
                let page = match store.events_page(&filter, cursor.as_ref(), false, EXPORT_PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_status(DOMAIN))).await;
                        return;
                    }
                };
                let last = page.last().map(|r| (r.time, r.id.clone()));
                let full = page.len() as i64 == EXPORT_PAGE;
                for row in &page {
                    line.clear();
                    format.write(row, &mut line);
                    if chunk.len() + line.len() > CHUNK && !chunk.is_empty() {
                        let message =
                            pb::ExportEventsResponse { chunk: std::mem::take(&mut chunk).into_bytes(), rows };
                        if tx.send(Ok(message)).await.is_err() {
                            return; // the client went away
                        }
                    }
                    chunk.push_str(&line);
                    rows += 1;
                }
                if !full {
                    break;
                }
                cursor = last;
            }
            if !chunk.is_empty() || rows == 0 {
                let _ = tx.send(Ok(pb::ExportEventsResponse { chunk: chunk.into_bytes(), rows })).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
