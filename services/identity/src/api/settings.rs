//! SettingsService: typed system settings. Admins and services read; admins write.

use serde_json::json;
use tonic::{Request, Response, Status};
use tt_common::{
    auth::{require_admin, require_admin_or_service},
    clock::to_timestamp,
    error::Violations,
};
use tt_proto::identity::v1::{self as pb, setting::Value, settings_service_server::SettingsService};

use super::Api;
use crate::{
    DOMAIN,
    domain::settings::{self, Definition, SettingValue},
    store::{audit::AuditRecord, settings::SettingRow},
};

fn to_proto(def: &Definition, stored: Option<&SettingRow>) -> pb::Setting {
    let value = def.current(stored.map(|r| r.value.as_str()));
    pb::Setting {
        key: def.key.to_owned(),
        description: def.description.to_owned(),
        value: Some(match value {
            SettingValue::Bool(b) => Value::BoolValue(b),
            SettingValue::Int(i) => Value::IntValue(i),
        }),
        update_time: stored.map(|r| to_timestamp(r.updated_at)),
        updated_by: stored.map(|r| r.updated_by.clone()).unwrap_or_default(),
    }
}

fn known_keys() -> String {
    settings::REGISTRY.iter().map(|d| d.key).collect::<Vec<_>>().join(", ")
}

#[tonic::async_trait]
impl SettingsService for Api {
    async fn list_settings(
        &self,
        request: Request<pb::ListSettingsRequest>,
    ) -> Result<Response<pb::ListSettingsResponse>, Status> {
        require_admin_or_service(&request)?;
        let stored = self.store.settings().await?;
        let settings =
            settings::REGISTRY.iter().map(|d| to_proto(d, stored.iter().find(|r| r.key == d.key))).collect();
        Ok(Response::new(pb::ListSettingsResponse { settings }))
    }

    async fn get_setting(
        &self,
        request: Request<pb::GetSettingRequest>,
    ) -> Result<Response<pb::GetSettingResponse>, Status> {
        require_admin_or_service(&request)?;
        let req = request.into_inner();
        let def = settings::find(&req.key).ok_or_else(|| DOMAIN.not_found("setting", &req.key))?;
        let stored = self.store.setting(def.key).await?;
        Ok(Response::new(pb::GetSettingResponse { setting: Some(to_proto(def, stored.as_ref())) }))
    }

    async fn update_setting(
        &self,
        request: Request<pb::UpdateSettingRequest>,
    ) -> Result<Response<pb::UpdateSettingResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let setting = req.setting.unwrap_or_default();
        let def = settings::find(&setting.key);
        v.check(def.is_some(), "setting.key", format!("unknown setting; known: {}", known_keys()));
        let value = match setting.value {
            Some(Value::BoolValue(b)) => Some(SettingValue::Bool(b)),
            Some(Value::IntValue(i)) => Some(SettingValue::Int(i)),
            Some(Value::StringValue(_)) | None => None,
        };
        match (def, &value) {
            (Some(d), Some(val)) => {
                if let Err(e) = d.check(val) {
                    v.add("setting.value", e);
                }
            }
            (Some(d), None) => {
                let want = match d.kind {
                    settings::Kind::Bool => "bool_value",
                    settings::Kind::Int { .. } => "int_value",
                };
                v.add("setting.value", format!("must be set as {want}"));
            }
            (None, _) => {}
        }
        v.into_result()?;
        let (Some(def), Some(value)) = (def, value) else {
            return Err(DOMAIN.internal(&"validated setting missing"));
        };
        let before = self.setting(def.key).await?;
        let now = self.now();
        let row = SettingRow {
            key: def.key.to_owned(),
            value: value.to_json(),
            updated_at: now,
            updated_by: admin.clone(),
        };
        let audit = AuditRecord::new(
            "setting.changed",
            &admin,
            def.key,
            json!({"from": before.to_json(), "to": value.to_json()}),
            now,
        );
        self.store.put_setting(&row, &audit).await?;
        Ok(Response::new(pb::UpdateSettingResponse { setting: Some(to_proto(def, Some(&row))) }))
    }
}
