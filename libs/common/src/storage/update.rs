//! FieldMask updates (AIP-134), the same way in every update RPC: the mask's paths checked (at
//! least one, at most [`MAX_MASK_PATHS`](crate::error::MAX_MASK_PATHS), no repeats), each path
//! applied by the resource's own setter, paths it does not take refused on `update_mask` (as
//! immutable or as unknown), and the caller's etag turned into the version the conditional write
//! must find.

use prost_types::FieldMask;
use tonic::Status;

use crate::error::{Domain, Violations};

/// What an update RPC may change of one resource.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The message's name in errors (`Goal`).
    pub message: &'static str,
    /// The resource's kind in etag errors (`goal`).
    pub kind: &'static str,
    /// Fields of the message this RPC never changes.
    pub immutable: &'static [&'static str],
    /// Said after "cannot be changed" (`" here"` where another RPC changes them).
    pub immutable_note: &'static str,
}

/// One update request's mask and etag.
#[derive(Debug, Clone)]
pub struct MaskedUpdate {
    pub paths: Vec<String>,
    etag: String,
    fields: &'static Fields,
    domain: Domain,
}

impl MaskedUpdate {
    /// Reads `mask` (violations on `update_mask`; `hint` follows "must name the fields to
    /// change") and keeps the caller's `etag`.
    pub fn new(
        v: &mut Violations,
        mask: Option<FieldMask>,
        etag: &str,
        hint: &str,
        fields: &'static Fields,
    ) -> Self {
        Self { paths: v.mask_paths(mask, hint), etag: etag.to_owned(), fields, domain: v.domain() }
    }

    /// The mask and the resource's id of an update request (`id` is the `(field, value)` of the
    /// id), or INVALID_ARGUMENT naming every bad one.
    pub fn of_request(
        domain: Domain,
        mask: Option<FieldMask>,
        etag: &str,
        id: (&str, &str),
        fields: &'static Fields,
    ) -> Result<Self, Status> {
        let mut v = Violations::new(domain);
        let update = Self::new(&mut v, mask, etag, "", fields);
        v.check_id(id.0, id.1);
        v.into_result()?;
        Ok(update)
    }

    /// Applies the paths to `row` (stored at `version`), then `check` over the whole row: the
    /// version the write must find, or INVALID_ARGUMENT naming every bad field (ABORTED for an
    /// etag never issued).
    pub fn apply_checked<R>(
        &self,
        version: i64,
        row: &mut R,
        set: impl FnMut(&mut Violations, &str, &mut R) -> bool,
        check: impl FnOnce(&mut Violations, &R),
    ) -> Result<i64, Status> {
        let expected = self.expected_version(version)?;
        let mut v = Violations::new(self.domain);
        self.apply(&mut v, row, set);
        if v.is_empty() {
            check(&mut v, row);
        }
        v.into_result()?;
        Ok(expected)
    }

    /// The version the write must find: the one the caller's etag names, or `current` when it
    /// sent none. ABORTED `ETAG_MISMATCH` for an etag this platform never issued.
    pub fn expected_version(&self, current: i64) -> Result<i64, Status> {
        if self.etag.is_empty() {
            return Ok(current);
        }
        super::etag_version(&self.etag).ok_or_else(|| self.domain.etag_mismatch(self.fields.kind))
    }

    /// Applies every path to `row` with `set`, which returns false for a path it does not take.
    pub fn apply<R>(
        &self,
        v: &mut Violations,
        row: &mut R,
        mut set: impl FnMut(&mut Violations, &str, &mut R) -> bool,
    ) {
        for path in &self.paths {
            if set(v, path, row) {
                continue;
            }
            let f = self.fields;
            if f.immutable.contains(&path.as_str()) {
                v.add("update_mask", format!("{path:?} cannot be changed{}", f.immutable_note));
            } else {
                v.add("update_mask", format!("{path:?} is not a field of {}", f.message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: Fields = Fields { message: "Note", kind: "note", immutable: &["id"], immutable_note: "" };

    fn mask(paths: &[&str]) -> Option<FieldMask> {
        Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
    }

    #[test]
    fn paths_are_applied_and_the_others_refused_by_kind() {
        let mut v = Violations::new("t");
        let update = MaskedUpdate::new(&mut v, mask(&["title", "id", "colour"]), "", "", &NOTE);
        let mut title = String::new();
        update.apply(&mut v, &mut title, |_, path, t| {
            if path == "title" {
                *t = "set".into();
                return true;
            }
            false
        });
        assert_eq!(title, "set");
        let status = v.into_result().expect_err("two refused");
        assert_eq!(crate::error::bad_fields(&status), ["update_mask", "update_mask"]);
        assert!(status.message().contains("update_mask"), "{status:?}");
    }

    #[test]
    fn etags_name_the_expected_version() {
        let mut v = Violations::new("t");
        let fresh = MaskedUpdate::new(&mut v, mask(&["title"]), "", "", &NOTE);
        assert_eq!(fresh.expected_version(7).expect("none sent"), 7);
        let named = MaskedUpdate::new(&mut v, mask(&["title"]), &super::super::etag(3), "", &NOTE);
        assert_eq!(named.expected_version(7).expect("v3"), 3);
        let foreign = MaskedUpdate::new(&mut v, mask(&["title"]), "W/\"x\"", "", &NOTE);
        assert_eq!(foreign.expected_version(7).expect_err("never issued").code(), tonic::Code::Aborted);
        let empty = MaskedUpdate::new(&mut v, None, "", " (title)", &NOTE);
        assert!(empty.paths.is_empty());
        assert_eq!(crate::error::bad_fields(&v.into_result().expect_err("no mask")), ["update_mask"]);
    }
}
