//! `events.list` and `events.instances`: full listings, incremental sync
//! with sync tokens ("Synchronize resources efficiently"), paging, and
//! series shown as Google shows them.
//!
//! A listing is one consistent cut of the change sequence: its page tokens
//! carry where it started and ends, so changes made while it is read page
//! by page land in the next delta, never lost, never half-seen. Items come
//! in the order of their latest change (`orderBy=updated` is that order);
//! `orderBy=startTime` sorts the whole cut by start.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::recurrence::{self, OccStart};
use super::state::{Calendar, GoogleEmulator, Json, Principal, State, StoredEvent};
use super::validate::{event_end, event_start, is_cancelled};

/// The query of `events.list`, as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub sync_token: Option<String>,
    pub page_token: Option<String>,
    pub max_results: Option<i64>,
    pub show_deleted: Option<bool>,
    /// Expand series into their instances ("Events: list", `singleEvents`).
    pub single_events: Option<bool>,
    #[serde(default)]
    pub private_extended_property: Vec<String>,
    pub time_min: Option<String>,
    pub time_max: Option<String>,
    pub updated_min: Option<String>,
    pub q: Option<String>,
    pub order_by: Option<String>,
    #[serde(rename = "iCalUID")]
    pub i_cal_uid: Option<String>,
}

/// Where a listing is: the cut it reads and how far it got.
struct Cursor {
    epoch: u64,
    since: u64,
    upto: u64,
    /// The next item is item `resume_idx` of the event at `resume_seq` (or,
    /// sorted, item `resume_idx` of the sorted cut).
    resume_seq: u64,
    resume_idx: u64,
    page_no: u64,
    show_deleted: bool,
    single_events: bool,
    sorted: bool,
}

impl Cursor {
    fn encode(&self) -> String {
        let flags =
            self.show_deleted as u8 | (self.single_events as u8) << 1 | (self.sorted as u8) << 2;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "p.{}.{}.{}.{}.{}.{}.{}",
            self.epoch,
            self.since,
            self.upto,
            self.resume_seq,
            self.resume_idx,
            self.page_no,
            flags
        ))
    }

    fn decode(s: &str) -> Option<Cursor> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.strip_prefix("p.")?.split('.');
        let mut next = || parts.next()?.parse::<u64>().ok();
        let (epoch, since, upto, resume_seq, resume_idx, page_no, flags) = (
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
        );
        Some(Cursor {
            epoch,
            since,
            upto,
            resume_seq,
            resume_idx,
            page_no,
            show_deleted: flags & 1 != 0,
            single_events: flags & 2 != 0,
            sorted: flags & 4 != 0,
        })
    }
}

fn encode_sync_token(epoch: u64, seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("s.{epoch}.{seq}"))
}

fn decode_sync_token(s: &str) -> Option<(u64, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (epoch, seq) = raw.strip_prefix("s.")?.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::bad(&format!("Invalid value for {name}")))
        })
        .transpose()
}

/// The filters of a query, applied to every item a listing would show.
struct Filters {
    private: Vec<(String, String)>,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    updated_min: Option<DateTime<Utc>>,
    text: Option<String>,
    i_cal_uid: Option<String>,
}

impl Filters {
    fn of(q: &ListQuery) -> Result<Filters, ApiError> {
        let private = q
            .private_extended_property
            .iter()
            .map(|f| match f.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(ApiError::bad("Invalid privateExtendedProperty filter")),
            })
            .collect::<Result<_, _>>()?;
        let time_min = parse_time("timeMin", &q.time_min)?;
        let time_max = parse_time("timeMax", &q.time_max)?;
        if matches!((time_min, time_max), (Some(a), Some(b)) if b <= a) {
            // "Handle API errors", 400: the example Google gives.
            let mut e =
                ApiError::bad_reason("timeRangeEmpty", "The specified time range is empty.");
            e.body["error"]["errors"][0]["locationType"] = json!("parameter");
            e.body["error"]["errors"][0]["location"] = json!("timeMax");
            return Err(e);
        }
        Ok(Filters {
            private,
            time_min,
            time_max,
            updated_min: parse_time("updatedMin", &q.updated_min)?,
            text: q.q.as_ref().map(|t| t.to_lowercase()),
            i_cal_uid: q.i_cal_uid.clone(),
        })
    }

    fn keep(&self, item: &Map<String, Value>) -> bool {
        let s = |k: &str| item.get(k).and_then(|v| v.as_str());
        let private_ok = self.private.iter().all(|(k, v)| {
            item.get("extendedProperties")
                .and_then(|p| p.get("private"))
                .and_then(|p| p.get(k))
                .and_then(|x| x.as_str())
                == Some(v.as_str())
        });
        // "timeMin: Lower bound (exclusive) for an event's end time";
        // "timeMax: Upper bound (exclusive) for an event's start time".
        // Tombstones without times pass; a series is kept while its first
        // instance starts before timeMax.
        let end_ok = self.time_min.is_none_or(|min| {
            recurrence::is_master(item) || event_end(item).is_none_or(|end| end > min)
        });
        let start_ok = self
            .time_max
            .is_none_or(|max| event_start(item).is_none_or(|start| start < max));
        let updated_ok = self.updated_min.is_none_or(|min| {
            s("updated").is_none_or(|u| DateTime::parse_from_rfc3339(u).is_ok_and(|u| u >= min))
        });
        let uid_ok = self
            .i_cal_uid
            .as_deref()
            .is_none_or(|uid| s("iCalUID") == Some(uid));
        let text_ok = self.text.as_deref().is_none_or(|t| text_matches(item, t));
        private_ok && end_ok && start_ok && updated_ok && uid_ok && text_ok
    }
}

/// `q`: "Free text search terms to find events that match these terms in
/// [...] summary, description, location, attendee's displayName,
/// attendee's email, organizer's displayName, organizer's email". Matched
/// here as a case-insensitive substring of any of them.
fn text_matches(item: &Map<String, Value>, needle: &str) -> bool {
    let mut hay: Vec<&str> = ["summary", "description", "location"]
        .iter()
        .filter_map(|k| item.get(*k).and_then(|v| v.as_str()))
        .collect();
    for person in item
        .get("attendees")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .chain(item.get("organizer"))
    {
        for k in ["email", "displayName"] {
            if let Some(v) = person.get(k).and_then(|v| v.as_str()) {
                hay.push(v);
            }
        }
    }
    hay.iter().any(|h| h.to_lowercase().contains(needle))
}

/// How a listing shows events.
struct View {
    show_deleted: bool,
    single_events: bool,
    time_max: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

impl State {
    /// What one stored event shows in a listing: nothing, itself, a
    /// tombstone, or (expanded) its series' instances.
    fn items_of(&self, cal: &Calendar, e: &StoredEvent, v: &View) -> Vec<Map<String, Value>> {
        let body = &e.body;
        if e.moved_out {
            // Already a bare tombstone: a deletion for this calendar.
            return if v.show_deleted {
                vec![body.clone()]
            } else {
                vec![]
            };
        }
        let cancelled = is_cancelled(body);
        if v.single_events && recurrence::is_master(body) {
            if cancelled && !v.show_deleted {
                return vec![];
            }
            return expand(cal, body, v)
                .into_iter()
                .map(|(_, i)| {
                    if cancelled {
                        recurrence::tombstone(&i)
                    } else {
                        i
                    }
                })
                .collect();
        }
        if !cancelled {
            return vec![body.clone()];
        }
        if body.contains_key("recurringEventId") {
            // "showDeleted: [...] Cancelled instances of recurring events
            // (but not the underlying recurring event) will still be
            // included if showDeleted and singleEvents are both False. If
            // showDeleted and singleEvents are both True, only single
            // instances of deleted events [...] are returned."
            return if !v.single_events || v.show_deleted {
                vec![recurrence::tombstone(body)]
            } else {
                vec![]
            };
        }
        // An ordinary deletion keeps its fields here: Google guarantees
        // only the id, but answers recently deleted events whole.
        if v.show_deleted {
            vec![body.clone()]
        } else {
            vec![]
        }
    }

    fn response(&self, calendar: &str, upto: u64, items: Vec<Map<String, Value>>) -> Value {
        let summary = self
            .calendars
            .get(calendar)
            .map(|c| c.summary.clone())
            .unwrap_or_default();
        json!({
            "kind": "calendar#events",
            "etag": format!("\"{upto}\""),
            "summary": summary,
            "updated": super::store::rfc3339(self.now()),
            "timeZone": "Asia/Tokyo",
            "accessRole": "owner",
            "defaultReminders": [],
            "items": items.into_iter().map(Value::Object).collect::<Vec<_>>(),
        })
    }

    fn page_size(&self, max: usize, page_no: u64) -> usize {
        match &self.switches.page_sizes {
            Some(sizes) if !sizes.is_empty() => {
                max.min(sizes[(page_no % sizes.len() as u64) as usize])
            }
            _ => max,
        }
    }
}

/// A series' instances that are not exceptions (an exception is its own
/// stored event), as (start, body).
fn expand(
    cal: &Calendar,
    master: &Map<String, Value>,
    v: &View,
) -> Vec<(OccStart, Map<String, Value>)> {
    let until = v
        .time_max
        .unwrap_or_else(|| recurrence::default_horizon(master, v.now));
    let master_id = master
        .get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_default();
    recurrence::occurrences(master, until)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| {
            !cal.events
                .contains_key(&recurrence::instance_id(master_id, *o))
        })
        .map(|o| (o, recurrence::instance_body(master, o)))
        .collect()
}

fn start_key(item: &Map<String, Value>) -> (Option<DateTime<Utc>>, String) {
    let start = event_start(item).or_else(|| {
        item.get("originalStartTime")
            .and_then(|o| o.get("dateTime").or_else(|| o.get("date")))
            .and_then(|t| t.as_str())
            .and_then(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                            .ok()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|n| n.and_utc())
                    })
            })
    });
    let id = item
        .get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_default()
        .to_string();
    (start, id)
}

impl GoogleEmulator {
    pub fn list(
        &self,
        who: &Principal,
        calendar_id: &str,
        q: &ListQuery,
    ) -> Result<Json, ApiError> {
        let st = self.state.lock();
        let calendar = st.resolve(who, calendar_id)?;
        if q.sync_token.is_some()
            && (q.time_min.is_some()
                || q.time_max.is_some()
                || q.updated_min.is_some()
                || q.q.is_some()
                || q.order_by.is_some()
                || q.i_cal_uid.is_some()
                || !q.private_extended_property.is_empty())
        {
            return Err(ApiError::bad(
                "Sync token cannot be used with timeMin, timeMax, updatedMin, q, orderBy, iCalUID or privateExtendedProperty.",
            ));
        }
        let max = match q.max_results {
            None => 250,
            Some(n) if n < 1 => return Err(ApiError::bad("Invalid value for maxResults")),
            Some(n) => n.min(2500) as usize,
        };
        let sorted = match q.order_by.as_deref() {
            None | Some("updated") => false,
            Some("startTime") if q.single_events == Some(true) => true,
            Some("startTime") => {
                return Err(ApiError::bad(
                    "The requested ordering is not available for the particular query.",
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid_parameter(
                    "orderBy",
                    other,
                    "(startTime|updated)",
                ));
            }
        };
        let filters = Filters::of(q)?;
        let cursor = match &q.page_token {
            Some(pt) => {
                let c = Cursor::decode(pt).ok_or_else(|| ApiError::bad("Invalid page token"))?;
                if c.epoch != st.token_epoch {
                    return Err(ApiError::full_sync_required());
                }
                c
            }
            None => {
                let since = match &q.sync_token {
                    Some(t) => {
                        let (epoch, seq) =
                            decode_sync_token(t).ok_or_else(ApiError::full_sync_required)?;
                        if epoch != st.token_epoch || seq > st.seq {
                            return Err(ApiError::full_sync_required());
                        }
                        seq
                    }
                    None => 0,
                };
                Cursor {
                    epoch: st.token_epoch,
                    since,
                    upto: st.seq,
                    resume_seq: since + 1,
                    resume_idx: 0,
                    page_no: 0,
                    // A delta always includes deletions, as Google
                    // documents; so does a listing by updatedMin.
                    show_deleted: q.sync_token.is_some()
                        || q.updated_min.is_some()
                        || q.show_deleted.unwrap_or(false),
                    single_events: q.single_events.unwrap_or(false),
                    sorted,
                }
            }
        };
        let cal = st
            .calendars
            .get(&calendar)
            .ok_or_else(ApiError::not_found)?;
        let view = View {
            show_deleted: cursor.show_deleted,
            single_events: cursor.single_events,
            time_max: filters.time_max,
            now: st.now(),
        };
        let page_size = st.page_size(max, cursor.page_no);
        let mut items = Vec::new();
        let mut resume = (cursor.resume_seq, cursor.resume_idx);
        let mut more = false;
        if cursor.sorted {
            let mut all: Vec<Map<String, Value>> = cal
                .by_seq
                .range(..=cursor.upto)
                .filter_map(|(_, id)| cal.events.get(id))
                .flat_map(|e| st.items_of(cal, e, &view))
                .filter(|i| filters.keep(i))
                .collect();
            all.sort_by_key(start_key);
            let from = cursor.resume_idx as usize;
            items = all.iter().skip(from).take(page_size).cloned().collect();
            more = all.len() > from + items.len();
            resume = (0, (from + items.len()) as u64);
        } else if cursor.resume_seq <= cursor.upto {
            'scan: for (&seq, id) in cal.by_seq.range(cursor.resume_seq..=cursor.upto) {
                let Some(e) = cal.events.get(id) else {
                    continue;
                };
                let skip = if seq == cursor.resume_seq {
                    cursor.resume_idx as usize
                } else {
                    0
                };
                for (i, item) in st
                    .items_of(cal, e, &view)
                    .into_iter()
                    .enumerate()
                    .skip(skip)
                {
                    if !filters.keep(&item) {
                        continue;
                    }
                    if items.len() == page_size {
                        more = true;
                        break 'scan;
                    }
                    items.push(item);
                    resume = (seq, i as u64 + 1);
                }
            }
        }
        let mut out = st.response(&calendar, cursor.upto, items);
        if more {
            out["nextPageToken"] = json!(
                Cursor {
                    resume_seq: resume.0,
                    resume_idx: resume.1,
                    page_no: cursor.page_no + 1,
                    ..cursor
                }
                .encode()
            );
        } else {
            out["nextSyncToken"] = json!(encode_sync_token(cursor.epoch, cursor.upto));
        }
        Ok(out)
    }

    /// `events.instances`: the instances of a series in order, exceptions
    /// in their place, cancelled ones only with `showDeleted`.
    pub fn instances(
        &self,
        who: &Principal,
        calendar_id: &str,
        event_id: &str,
        q: &ListQuery,
    ) -> Result<Json, ApiError> {
        let st = self.state.lock();
        let calendar = st.resolve(who, calendar_id)?;
        let cal = st
            .calendars
            .get(&calendar)
            .ok_or_else(ApiError::not_found)?;
        let master = cal
            .events
            .get(event_id)
            .filter(|e| !e.moved_out && recurrence::is_master(&e.body))
            .ok_or_else(ApiError::not_found)?;
        let filters = Filters::of(q)?;
        let show_deleted = q.show_deleted.unwrap_or(false);
        let until = filters
            .time_max
            .unwrap_or_else(|| recurrence::default_horizon(&master.body, st.now()));
        let master_cancelled = is_cancelled(&master.body);
        let all: Vec<Map<String, Value>> = recurrence::occurrences(&master.body, until)?
            .into_iter()
            .filter_map(|o| {
                let id = recurrence::instance_id(event_id, o);
                let item = match cal.events.get(&id) {
                    Some(ex) => ex.body.clone(),
                    None if master_cancelled => {
                        recurrence::tombstone(&recurrence::instance_body(&master.body, o))
                    }
                    None => recurrence::instance_body(&master.body, o),
                };
                if is_cancelled(&item) {
                    show_deleted.then(|| recurrence::tombstone(&item))
                } else {
                    Some(item)
                }
            })
            .filter(|i| filters.keep(i))
            .collect();
        let max = q.max_results.unwrap_or(250).clamp(1, 2500) as usize;
        let from = match &q.page_token {
            Some(t) => t
                .strip_prefix("i.")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ApiError::bad("Invalid page token"))?,
            None => 0,
        };
        let page: Vec<Map<String, Value>> = all.iter().skip(from).take(max).cloned().collect();
        let next = from + page.len();
        let mut out = st.response(&calendar, st.seq, page);
        if next < all.len() {
            out["nextPageToken"] = json!(format!("i.{next}"));
        }
        Ok(out)
    }
}
