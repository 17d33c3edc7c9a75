//! Cursor pagination as docs/api.md describes it: `?limit=1..100` (default 20) and `?cursor=`,
//! answered with `{"items": [...], "next_cursor": "..." | null}`, newest first.

use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::error::ErrorCode;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// The query string of a list endpoint, as received; [`PageQuery::request`] validates it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn request(&self) -> Result<PageRequest, AppError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| AppError::BadRequest {
                    code: ErrorCode::InvalidRequest,
                    message: format!("limit must be a number from 1 to {MAX_LIMIT}"),
                    details: Some(serde_json::json!({ "limit": "1..100" })),
                })?,
        };
        let cursor = self.cursor.clone().filter(|c| !c.is_empty());
        Ok(PageRequest { limit, cursor })
    }
}

impl PageRequest {
    /// The cursor as a ULID (the usual case: ids sort by creation time); 400 when it is not one.
    pub fn ulid_cursor(&self) -> Result<Option<String>, AppError> {
        match &self.cursor {
            None => Ok(None),
            Some(c) => ulid::Ulid::from_string(c)
                .map(|u| Some(u.to_string()))
                .map_err(|_| AppError::invalid("cursor is not valid")),
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> usize {
        self.limit + 1
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; `cursor_of` names the last row shown.
    pub fn from_rows(
        mut rows: Vec<T>,
        req: &PageRequest,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let next_cursor = if rows.len() > req.limit {
            rows.truncate(req.limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Room for one item of a page in JSON: list items are a few hundred bytes, so a page is
/// written into one buffer instead of one that doubles seven times on the way to 10 KB.
const ITEM_BYTES: usize = 640;

impl<T: Serialize> axum::response::IntoResponse for Page<T> {
    fn into_response(self) -> axum::response::Response {
        let mut body = Vec::with_capacity(64 + self.items.len() * ITEM_BYTES);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => AppError::Internal(anyhow::Error::new(e).context("cannot write a page"))
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>) -> Result<PageRequest, AppError> {
        PageQuery {
            limit: limit.map(str::to_string),
            cursor: None,
        }
        .request()
    }

    #[test]
    fn limits_default_to_twenty_and_stay_within_one_to_a_hundred() {
        assert_eq!(query(None).unwrap().limit, 20);
        assert_eq!(query(Some("100")).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten"] {
            assert!(query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_page_answers_as_json() {
        use axum::response::IntoResponse;
        let page = Page {
            items: vec!["a\"b", "c"],
            next_cursor: Some("x".into()),
        };
        let response = page.into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({ "items": ["a\"b", "c"], "next_cursor": "x" })
        );
    }

    #[test]
    fn a_next_cursor_is_given_only_when_more_rows_exist() {
        let req = query(Some("2")).unwrap();
        let page = Page::from_rows(vec![5, 4, 3], &req, |n| n.to_string());
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor.as_deref(), Some("4"));
        let page = Page::from_rows(vec![5, 4], &req, |n| n.to_string());
        assert_eq!(page.next_cursor, None);
    }
}
