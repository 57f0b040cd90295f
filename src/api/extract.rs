//! Request parsing shared by the handlers: percent-decoding of path segments, form and query
//! strings, JSON object bodies with typed field access, and numbers in the path.
//!
//! Not here: body limits and JSON syntax (`body.rs`), paging parameters (`paging.rs`), the
//! route table (`routes.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::App;
use super::body::{parse_json, read_limited};
use super::errors::ApiError;
use crate::model::RecordFields;

/// The byte written as `%XY` at `bytes[at]`: two hex digits exactly (`from_str_radix` alone
/// also takes "+7").
fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    bytes
        .get(at + 1..at + 3)
        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u8::from_str_radix(h, 16).ok())
}

/// Percent-decodes one path segment (`+` stays literal); the result must be UTF-8. Borrows
/// the segment when it holds no `%`, as most do.
pub fn path_segment(raw: &str) -> Result<Cow<'_, str>, ApiError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let byte = hex_pair(bytes, i).ok_or_else(|| {
                ApiError::bad_request("bad_path", "malformed percent-encoding in the path")
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ApiError::bad_request("bad_path", "the path is not valid UTF-8"))
}

/// `path_segment`, owned.
pub fn decode_segment(raw: &str) -> Result<String, ApiError> {
    path_segment(raw).map(Cow::into_owned)
}

/// Parses an `application/x-www-form-urlencoded` body or query string.
pub fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b'%' => match hex_pair(bytes, i) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                },
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The pairs of a query string (none when the request has no query).
pub fn query_form(query: Option<&str>) -> Vec<(String, String)> {
    parse_form(query.unwrap_or("").as_bytes())
}

/// Reads a bounded form body (the OAuth endpoints).
pub async fn read_form(app: &App, body: Incoming) -> Result<Vec<(String, String)>, ApiError> {
    let bytes = read_limited(body, app.max_json(), app.request_timeout()).await?;
    Ok(parse_form(&bytes))
}

/// A JSON object body with typed, non-coercing field access.
pub struct Fields(Map<String, Value>);

impl Fields {
    pub async fn read(app: &App, body: Incoming) -> Result<Self, ApiError> {
        let bytes = read_limited(body, app.max_json(), app.request_timeout()).await?;
        Self::parse(&bytes)
    }

    /// Parses a whole body, which must be one JSON object. Split from `read` so the fuzz
    /// targets reach the parsing without a connection.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match parse_json::<Value>(bytes)? {
            Value::Object(map) => Ok(Fields(map)),
            _ => Err(ApiError::bad_request(
                "invalid_json",
                "the body must be a JSON object",
            )),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(
                "invalid_field",
                format!("{key} must be a string"),
            )),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?
            .ok_or_else(|| ApiError::bad_request("missing_field", format!("{key} is required")))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                ApiError::bad_request("invalid_field", format!("{key} must be an integer"))
            }),
            Some(_) => Err(ApiError::bad_request(
                "invalid_field",
                format!("{key} must be an integer"),
            )),
        }
    }

    pub fn req_int(&self, key: &str) -> Result<i64, ApiError> {
        self.opt_int(key)?
            .ok_or_else(|| ApiError::bad_request("missing_field", format!("{key} is required")))
    }

    /// An id or version number: a JSON string holding an integer, as the API renders it. A
    /// bare JSON number is refused like every other wrong JSON type (no coercion).
    pub fn opt_id(&self, key: &str) -> Result<Option<u64>, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "invalid_field",
                format!("{key} must be a number in a string"),
            )
        };
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    pub fn tags(&self) -> Result<Vec<String>, ApiError> {
        match self.get("tags") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::bad_request(
                        "invalid_field",
                        "tags must be strings",
                    )),
                })
                .collect(),
            Some(_) => Err(ApiError::bad_request(
                "invalid_field",
                "tags must be an array of strings",
            )),
        }
    }

    /// Whether the body holds `key` (not null).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `attributes`: an object of string values, `None` when absent.
    pub fn attributes(&self) -> Result<Option<BTreeMap<String, String>>, ApiError> {
        self.get("attributes").map(attributes_of).transpose()
    }

    /// name (required) and description (empty = absent), as types and device types take them.
    pub fn name_description(&self) -> Result<(String, String), ApiError> {
        Ok((
            self.req_str("name")?,
            self.opt_str("description")?.unwrap_or_default(),
        ))
    }

    /// name, description (empty = absent), version and tags.
    pub fn record_fields(&self) -> Result<RecordFields, ApiError> {
        let (name, description) = self.name_description()?;
        Ok(RecordFields {
            name,
            description,
            version: self.req_str("version")?,
            tags: self.tags()?,
        })
    }

    /// `associations` of a pool record: `{"<partnerId>": ["<deviceTypeId>", ...]}` as
    /// (owner, device type id) pairs. Only an appliance admin may name another partner.
    pub fn associations(
        &self,
        partner: &str,
        admin: bool,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let mut associations = Vec::new();
        match self.get("associations") {
            None => {}
            Some(Value::Object(map)) => {
                for (owner, list) in map {
                    if owner != partner && !admin {
                        return Err(ApiError::forbidden(
                            "foreign_association",
                            "only an appliance admin may associate with another partner's device types",
                        ));
                    }
                    let Value::Array(ids) = list else {
                        return Err(ApiError::bad_request(
                            "invalid_field",
                            "associations values must be arrays of device type ids",
                        ));
                    };
                    for id in ids {
                        let Value::String(id) = id else {
                            return Err(ApiError::bad_request(
                                "invalid_field",
                                "device type ids must be strings",
                            ));
                        };
                        associations.push((owner.clone(), id.clone()));
                    }
                }
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "associations must be an object",
                ));
            }
        }
        Ok(associations)
    }
}

/// A JSON object of string values as a map (device attributes).
pub fn attributes_of(value: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_field",
            "attributes must be an object of string values",
        )
    };
    let Value::Object(map) = value else {
        return Err(bad());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad()),
        })
        .collect()
}

/// A firmware type number from the path: must be a number; range is checked by the store.
pub fn path_type(raw: &str) -> Result<u16, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request("bad_type", format!("firmware type {raw:?} is not a number"))
    })
}

pub fn path_number(raw: &str, what: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("bad_number", format!("{what} {raw:?} is not a number")))
}

/// A `{type}/versionNumbers/{versionNumber}` pair from the path.
pub fn path_version(raw_type: &str, raw_vn: &str) -> Result<(u16, u64), ApiError> {
    Ok((path_type(raw_type)?, path_number(raw_vn, "versionNumber")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form(b"grant_type=password&username=a%40b.c&password=p+w%2B&flag&=x");
        assert_eq!(f[0], ("grant_type".into(), "password".into()));
        assert_eq!(f[1], ("username".into(), "a@b.c".into()));
        assert_eq!(f[2], ("password".into(), "p w+".into()));
        assert_eq!(f[3], ("flag".into(), String::new()));
        assert_eq!(
            parse_form(b"bad=%zz%").first().map(|p| p.1.as_str()),
            Some("%zz%")
        );
        // Found by the query_paging fuzz target: "%+7" decoded to byte 7.
        assert_eq!(
            parse_form(b"a=%+7").first().map(|p| p.1.as_str()),
            Some("% 7")
        );
    }
}
