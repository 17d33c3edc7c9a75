//! Request parts several API areas read: ids in paths and date ranges in queries.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::json;

use crate::db::types::UnknownValue;
use crate::error::ErrorCode;
use crate::error::{AppError, Result};

/// Ids are ULIDs; anything else cannot name a resource, so it is simply not found. The
/// route's id type (`AudioId`, `PodcastId`…) is inferred from where the id goes.
pub fn parse_id<I: FromStr>(id: &str) -> Result<I> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// A `?name=` filter that must be one of a status or kind's values; empty means no filter.
/// Anything else is a 400 naming the values allowed.
pub fn parse_choice<T: FromStr<Err = UnknownValue>>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e: UnknownValue| AppError::BadRequest {
                code: ErrorCode::InvalidRequest,
                message: format!("{name} must be one of {}", e.allowed.join(", ")),
                details: Some(json!({ name: v })),
            }),
    }
}

/// A `?name=` filter naming a row by id; empty means no filter. Anything but an id is a 400
/// naming the filter (an id that names nothing of the caller's is the filter's business: it
/// matches nothing).
pub fn parse_id_filter<I: FromStr>(name: &str, value: Option<&str>) -> Result<Option<I>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| AppError::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: format!("{name} must be an id like 01J0Z3N2X5Q8W6R9T4V7Y1B3C5"),
            details: Some(json!({ name: v })),
        }),
    }
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` of the usage reports.
#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl RangeQuery {
    /// Validated `YYYY-MM-DD` bounds; the last 30 days when absent. At most 366 days.
    pub fn days(&self) -> Result<(String, String)> {
        let today = time::OffsetDateTime::now_utc().date();
        let parse = |name: &str, v: &Option<String>, default: time::Date| -> Result<time::Date> {
            match v.as_deref().filter(|s| !s.is_empty()) {
                None => Ok(default),
                Some(s) => {
                    time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
                        .map_err(|_| AppError::BadRequest {
                            code: ErrorCode::InvalidRequest,
                            message: format!("{name} must be a date like 2026-01-31"),
                            details: Some(json!({ name: s })),
                        })
                }
            }
        };
        let to = parse("to", &self.to, today)?;
        let from = parse("from", &self.from, to - time::Duration::days(29))?;
        if from > to || (to - from).whole_days() > 366 {
            return Err(AppError::invalid(
                "from must be on or before to, at most 366 days apart",
            ));
        }
        Ok((from.to_string(), to.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{AudioId, PodcastId};
    use ulid::Ulid;

    fn range(from: Option<&str>, to: Option<&str>) -> RangeQuery {
        RangeQuery {
            from: from.map(Into::into),
            to: to.map(Into::into),
        }
    }

    #[test]
    fn an_id_filter_is_an_id_or_nothing_and_anything_else_a_400_naming_it() {
        let id = AudioId::from(Ulid::generate());
        assert_eq!(
            parse_id_filter::<AudioId>("audio_id", Some(&id.to_string())).unwrap(),
            Some(id)
        );
        assert_eq!(
            parse_id_filter::<AudioId>("audio_id", Some("")).unwrap(),
            None
        );
        assert_eq!(parse_id_filter::<AudioId>("audio_id", None).unwrap(), None);
        let e = parse_id_filter::<AudioId>("audio_id", Some("nope")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
        assert!(
            matches!(&e, AppError::BadRequest { details: Some(d), .. } if d["audio_id"] == "nope"),
            "{e:?}"
        );
    }

    #[test]
    fn ids_that_are_not_ulids_are_not_found() {
        assert!(matches!(
            parse_id::<AudioId>("nope"),
            Err(AppError::NotFound)
        ));
        let id = AudioId::from(Ulid::generate());
        assert_eq!(parse_id::<AudioId>(&id.to_string()).unwrap(), id);
        // The same text names a podcast when the route asks for one; the types differ.
        assert_eq!(
            parse_id::<PodcastId>(&id.to_string()).unwrap().ulid(),
            id.ulid()
        );
    }

    #[test]
    fn a_range_defaults_to_the_last_thirty_days_and_refuses_bad_bounds() {
        let (from, to) = range(None, Some("2026-03-31")).days().unwrap();
        assert_eq!((from.as_str(), to.as_str()), ("2026-03-02", "2026-03-31"));
        let err = range(Some("31/01/2026"), None).days().unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(
            range(Some("2026-02-01"), Some("2026-01-01"))
                .days()
                .is_err()
        );
        assert!(
            range(Some("2024-01-01"), Some("2026-01-01"))
                .days()
                .is_err()
        );
    }
}
