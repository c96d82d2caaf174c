//! Paging through a split with the Hub dataset viewer's `/rows` API.
//!
//! A page is `{"features": [...], "rows": [{"row_idx", "row": {...}, "truncated_cells": [...]}],
//! "num_rows_total", "partial"}`. Pages are requested until `num_rows_total` rows are read
//! (the entry's `max_rows` when smaller); without `num_rows_total`, until a page comes back
//! short.

use std::io::Read;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{DatasetEntry, FetchOptions, Http, MAX_PAGE_LEN, rows_url, snippet};
use crate::error::{DataError, Result};

/// One row of a split.
#[derive(Debug, Clone)]
pub(super) struct HubRow {
    /// Its index in the split (`row_idx`).
    pub idx: u64,
    /// The cells by column.
    pub cells: Map<String, Value>,
    /// Columns the viewer left out or cut (`truncated_cells`).
    pub truncated: Vec<String>,
}

#[derive(Deserialize)]
struct Page {
    rows: Vec<PageRow>,
    #[serde(default)]
    num_rows_total: Option<u64>,
}

#[derive(Deserialize)]
struct PageRow {
    #[serde(default)]
    row_idx: Option<u64>,
    row: Value,
    #[serde(default)]
    truncated_cells: Vec<String>,
}

/// Reads the rows of `entry`'s split (its first `max_rows` when set).
pub(super) fn fetch_rows(
    http: &Http,
    entry: &DatasetEntry,
    options: &FetchOptions,
) -> Result<Vec<HubRow>> {
    let page_len = options.page_len.clamp(1, MAX_PAGE_LEN);
    let limit = entry.max_rows.unwrap_or(u64::MAX);
    let what = entry.describe();
    let mut out: Vec<HubRow> = Vec::new();
    let mut total: Option<u64> = None;
    let mut offset: u64 = 0;
    loop {
        let want = limit.min(total.unwrap_or(u64::MAX));
        if offset >= want {
            break;
        }
        let length = (page_len as u64).min(want - offset) as usize;
        let url = rows_url(entry, &options.rows_base_url, offset, length);
        let err = |message: String| DataError::Fetch {
            url: url.clone(),
            message: format!("{what}: {message}"),
        };
        let resp = http.get(&url, options.token.as_deref()).map_err(&err)?;
        let mut body = Vec::new();
        resp.into_reader()
            .read_to_end(&mut body)
            .map_err(|e| err(format!("reading body: {e}")))?;
        let page: Page = serde_json::from_slice(&body).map_err(|e| {
            err(format!(
                "not a /rows response ({e}): {}",
                snippet(String::from_utf8_lossy(&body).trim(), 200)
            ))
        })?;
        if let Some(t) = page.num_rows_total {
            total = Some(t);
        }
        let n = page.rows.len() as u64;
        for (i, r) in page.rows.into_iter().enumerate() {
            if out.len() as u64 >= limit {
                break;
            }
            let idx = r.row_idx.unwrap_or(offset + i as u64);
            let Value::Object(cells) = r.row else {
                return Err(err(format!("row {idx}: `row` is not a JSON object")));
            };
            out.push(HubRow {
                idx,
                cells,
                truncated: r.truncated_cells,
            });
        }
        offset += n;
        match total {
            Some(t) if n == 0 && offset < t.min(limit) => {
                return Err(err(format!(
                    "no rows at offset {offset}, though the split has {t}"
                )));
            }
            None if n < length as u64 => break,
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(DataError::Fetch {
            url: rows_url(entry, &options.rows_base_url, 0, page_len),
            message: format!("{what}: the split has no rows"),
        });
    }
    Ok(out)
}
