//! Paging, sorting and the tags filter of image lists, and the page envelope
//! (`number,size,totalPages,numberOfElements,totalElements,content,sort`).
//!
//! Pure: parses the query and pages an in-memory list.

use std::cmp::Ordering;
use std::num::IntErrorKind;

use super::errors::ApiError;
use super::extract::query_form;
use crate::model::Record;

pub const DEFAULT_SIZE: usize = 50;
pub const MAX_SIZE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    UpdatedTimestamp,
    CreatedTimestamp,
    Description,
    Name,
    VersionNumber,
    Version,
    Type,
}

impl SortField {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "updatedTimestamp" => SortField::UpdatedTimestamp,
            "createdTimestamp" => SortField::CreatedTimestamp,
            "description" => SortField::Description,
            "name" => SortField::Name,
            "versionNumber" => SortField::VersionNumber,
            "version" => SortField::Version,
            "type" => SortField::Type,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SortField::UpdatedTimestamp => "updatedTimestamp",
            SortField::CreatedTimestamp => "createdTimestamp",
            SortField::Description => "description",
            SortField::Name => "name",
            SortField::VersionNumber => "versionNumber",
            SortField::Version => "version",
            SortField::Type => "type",
        }
    }

    fn compare(self, a: &Record, b: &Record) -> Ordering {
        match self {
            SortField::UpdatedTimestamp => a.updated_ms.cmp(&b.updated_ms),
            SortField::CreatedTimestamp => a.created_ms.cmp(&b.created_ms),
            SortField::Description => a.description.cmp(&b.description),
            SortField::Name => a.name.cmp(&b.name),
            SortField::VersionNumber => a.version_number.cmp(&b.version_number),
            SortField::Version => a.version.cmp(&b.version),
            SortField::Type => a.fw_type.cmp(&b.fw_type),
        }
    }
}

/// Which page of a list: `page` (from 0) and `size` (1..=MAX_SIZE; larger is clamped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub page: usize,
    pub size: usize,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            page: 0,
            size: DEFAULT_SIZE,
        }
    }
}

impl Window {
    /// Takes `page` or `size` from one query pair; `Ok(false)` for any other key.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "page" => {
                self.page = value
                    .parse()
                    .map_err(|_| ApiError::bad_request("bad_page", "page must be a number ≥ 0"))?;
            }
            "size" => {
                // A number past i64 is still a number: clamped (or refused below 1) as any.
                let size: i64 = match value.parse::<i64>() {
                    Ok(size) => size,
                    Err(e) if *e.kind() == IntErrorKind::PosOverflow => i64::MAX,
                    Err(e) if *e.kind() == IntErrorKind::NegOverflow => i64::MIN,
                    Err(_) => {
                        return Err(ApiError::bad_request("bad_size", "size must be a number"));
                    }
                };
                if size < 1 {
                    return Err(ApiError::bad_request("bad_size", "size must be at least 1"));
                }
                self.size = usize::try_from(size).unwrap_or(MAX_SIZE).min(MAX_SIZE);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The page envelope over an already filtered and sorted list.
    pub fn envelope<T>(
        &self,
        items: &[T],
        sort: &str,
        render: impl Fn(&T) -> serde_json::Value,
    ) -> serde_json::Value {
        let content: Vec<serde_json::Value> = items
            .iter()
            .skip(self.first())
            .take(self.size)
            .map(render)
            .collect();
        self.wrap(items.len(), content, sort)
    }

    /// Index of the page's first item.
    pub fn first(&self) -> usize {
        self.page.saturating_mul(self.size)
    }

    /// The page envelope around one page already rendered, of `total` items in all.
    pub fn wrap(
        &self,
        total: usize,
        content: Vec<serde_json::Value>,
        sort: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "number": self.page,
            "size": self.size,
            "totalPages": total.div_ceil(self.size),
            "numberOfElements": content.len(),
            "totalElements": total,
            "content": content,
            "sort": sort,
        })
    }
}

/// A parsed list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub window: Window,
    pub sort: SortField,
    pub descending: bool,
    pub tags: Vec<String>,
}

impl PageQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut q = PageQuery {
            window: Window::default(),
            sort: SortField::UpdatedTimestamp,
            descending: true,
            tags: Vec::new(),
        };
        for (key, value) in query_form(query) {
            if q.window.take(&key, &value)? {
                continue;
            }
            match key.as_str() {
                "sort" => {
                    let (field, dir) = value.split_once(',').unwrap_or((value.as_str(), "asc"));
                    q.sort = SortField::parse(field.trim()).ok_or_else(|| {
                        ApiError::bad_request("bad_sort", format!("cannot sort by {field:?}"))
                    })?;
                    q.descending = match dir.trim().to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(ApiError::bad_request(
                                "bad_sort",
                                "sort direction must be asc or desc",
                            ));
                        }
                    };
                }
                "tags" => q.tags.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
                _ => {}
            }
        }
        Ok(q)
    }

    /// Filters by tags, sorts (ties broken by id for a stable order) and pages.
    pub fn apply(
        &self,
        mut records: Vec<Record>,
        render: impl Fn(&Record) -> serde_json::Value,
    ) -> serde_json::Value {
        records.retain(|r| self.tags.iter().all(|t| r.tags.contains(t)));
        records.sort_by(|a, b| {
            let o = self.sort.compare(a, b).then(a.id.cmp(&b.id));
            if self.descending { o.reverse() } else { o }
        });
        let direction = if self.descending { "DESC" } else { "ASC" };
        self.window.envelope(
            &records,
            &format!("{}: {direction}", self.sort.name()),
            render,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, vn: u64, name: &str, tags: &[&str]) -> Record {
        Record {
            id,
            partner_id: "p".into(),
            fw_type: 3,
            version_number: vn,
            name: name.into(),
            description: String::new(),
            version: "1".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            binary: None,
            device_type_id: None,
            device_description_id: None,
            device_profile_id: None,
            created_ms: id,
            updated_ms: 100 - id,
        }
    }

    #[test]
    fn defaults_and_errors() {
        let q = PageQuery::parse(None).unwrap();
        assert_eq!(
            (q.window.page, q.window.size, q.sort, q.descending),
            (0, 50, SortField::UpdatedTimestamp, true)
        );
        assert_eq!(
            PageQuery::parse(Some("size=5000")).unwrap().window.size,
            1000
        );
        // Found by the query_paging check of the documented rule: past i64 was a 400.
        assert_eq!(
            PageQuery::parse(Some("size=99999999999999999999"))
                .unwrap()
                .window
                .size,
            1000
        );
        assert!(PageQuery::parse(Some("size=-99999999999999999999")).is_err());
        assert!(PageQuery::parse(Some("size=0")).is_err());
        assert!(PageQuery::parse(Some("size=x")).is_err());
        assert!(PageQuery::parse(Some("page=-1")).is_err());
        assert!(PageQuery::parse(Some("sort=bogus")).is_err());
        assert!(PageQuery::parse(Some("sort=name,up")).is_err());
        let q = PageQuery::parse(Some("sort=name")).unwrap();
        assert!(!q.descending);
    }

    #[test]
    fn paging_arithmetic_sort_and_tags() {
        let records: Vec<Record> = (1..=7)
            .map(|i| {
                rec(
                    i,
                    10 + i,
                    &format!("n{i}"),
                    if i % 2 == 0 { &["a", "b"] } else { &["a"] },
                )
            })
            .collect();
        let q = PageQuery::parse(Some("size=3&page=2&sort=versionNumber,desc")).unwrap();
        let page = q.apply(records.clone(), |r| serde_json::json!(r.version_number));
        assert_eq!(page["totalPages"], 3);
        assert_eq!(page["numberOfElements"], 1);
        assert_eq!(page["totalElements"], 7);
        assert_eq!(page["content"], serde_json::json!([11]));
        assert_eq!(page["sort"], "versionNumber: DESC");
        let q = PageQuery::parse(Some("tags=a,b&sort=versionNumber,asc")).unwrap();
        let page = q.apply(records.clone(), |r| serde_json::json!(r.version_number));
        assert_eq!(page["content"], serde_json::json!([12, 14, 16]));
        let q = PageQuery::parse(Some("tags=zzz")).unwrap();
        let page = q.apply(records, |r| serde_json::json!(r.id));
        assert_eq!(page["totalPages"], 0);
        assert_eq!(page["content"], serde_json::json!([]));
    }
}
