//! Recurring series ("Recurring events" guide; Events resource:
//! `recurrence`, `recurringEventId`, `originalStartTime`).
//!
//! A series is one stored event (the master) whose `recurrence` holds RFC
//! 5545 lines (`RRULE`, `EXDATE`, `RDATE`). Its instances are not stored:
//! they are computed from the master when listed with `singleEvents=true`,
//! asked for by `events.instances`, or fetched by id. An instance that was
//! changed or cancelled becomes an exception: a stored event of its own,
//! with the instance's id, `recurringEventId` and `originalStartTime`.
//!
//! Expansion uses the `rrule` crate, which implements RFC 5545 whole (every
//! `FREQ`, `COUNT`, `UNTIL`, `INTERVAL`, `BYDAY` and the other `BY*` parts,
//! `EXDATE`, `RDATE`). `EXRULE` (deprecated by RFC 5545) is accepted and
//! ignored, as that crate does without its `exrule` feature.
//!
//! Bounds the API does not document: a series without `COUNT` or `UNTIL`
//! is expanded up to `timeMax` when one is given, else up to a year after
//! the emulator's clock (or after the series' start, if that is later); at
//! most `MAX_INSTANCES` instances of a series are ever listed.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// The most instances one series expands to.
pub(super) const MAX_INSTANCES: u16 = 1000;

/// When an instance starts: a date for all-day series, an instant for
/// timed ones (with the series' zone, for `originalStartTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum OccStart {
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl OccStart {
    /// The suffix Google puts after the master's id: `_20261201T010000Z`
    /// (UTC) for timed instances, `_20261201` for all-day ones.
    pub(super) fn id_suffix(self) -> String {
        match self {
            OccStart::Date(d) => d.format("%Y%m%d").to_string(),
            OccStart::Time(t) => t.format("%Y%m%dT%H%M%SZ").to_string(),
        }
    }

    pub(super) fn instant(self) -> DateTime<Utc> {
        match self {
            OccStart::Date(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
            OccStart::Time(t) => t,
        }
    }
}

pub(super) fn is_master(body: &Map<String, Value>) -> bool {
    body.get("recurrence")
        .and_then(|r| r.as_array())
        .is_some_and(|r| !r.is_empty())
}

fn series_zone(body: &Map<String, Value>) -> Option<chrono_tz::Tz> {
    body.get("start")?
        .get("timeZone")?
        .as_str()?
        .parse::<chrono_tz::Tz>()
        .ok()
}

/// Rewrites `UNTIL` to the UTC date-time RFC 5545 requires when the start
/// has a zone: Google also takes a bare date or a local time there.
fn normalise_until(line: &str, zone: chrono_tz::Tz, all_day: bool) -> String {
    let Some(rule) = line.strip_prefix("RRULE:") else {
        return line.to_string();
    };
    let parts: Vec<String> = rule
        .split(';')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") => {
                let utc = if v.len() == 8 {
                    NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(|d| {
                        if all_day {
                            d.and_hms_opt(23, 59, 59).map(|n| n.and_utc())
                        } else {
                            d.and_hms_opt(23, 59, 59)
                                .and_then(|n| zone.from_local_datetime(&n).earliest())
                                .map(|t| t.with_timezone(&Utc))
                        }
                    })
                } else if let Some(z) = v.strip_suffix('Z') {
                    NaiveDateTime::parse_from_str(z, "%Y%m%dT%H%M%S")
                        .ok()
                        .map(|n| Some(n.and_utc()))
                } else {
                    NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
                        .ok()
                        .map(|n| {
                            zone.from_local_datetime(&n)
                                .earliest()
                                .map(|t| t.with_timezone(&Utc))
                        })
                };
                match utc.flatten() {
                    Some(t) => format!("UNTIL={}", t.format("%Y%m%dT%H%M%SZ")),
                    None => p.to_string(),
                }
            }
            _ => p.to_string(),
        })
        .collect();
    format!("RRULE:{}", parts.join(";"))
}

/// The parsed series, ready to expand.
fn rule_set(body: &Map<String, Value>) -> Result<(rrule::RRuleSet, bool), ApiError> {
    let invalid = || ApiError::bad("Invalid recurrence rule.");
    let lines: Vec<&str> = body
        .get("recurrence")
        .and_then(|r| r.as_array())
        .ok_or_else(invalid)?
        .iter()
        .map(|l| l.as_str().ok_or_else(invalid))
        .collect::<Result<_, _>>()?;
    let start = body.get("start").ok_or_else(invalid)?;
    let (dtstart, zone, all_day) = if let Some(d) = start.get("date").and_then(|d| d.as_str()) {
        let d = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| invalid())?;
        (
            format!("DTSTART:{}T000000Z", d.format("%Y%m%d")),
            chrono_tz::UTC,
            true,
        )
    } else {
        // "Events" resource, start.timeZone: "For recurring events this
        // field is required and specifies the time zone in which the
        // recurrence is expanded."
        let zone = series_zone(body)
            .ok_or_else(|| ApiError::required("Missing time zone definition for start time."))?;
        let t = start
            .get("dateTime")
            .and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(invalid)?
            .with_timezone(&zone);
        (
            format!("DTSTART;TZID={}:{}", zone.name(), t.format("%Y%m%dT%H%M%S")),
            zone,
            false,
        )
    };
    let mut text = dtstart;
    for line in lines {
        let upper = line.to_ascii_uppercase();
        if !(upper.starts_with("RRULE:")
            || upper.starts_with("EXDATE")
            || upper.starts_with("RDATE")
            || upper.starts_with("EXRULE:"))
        {
            return Err(invalid());
        }
        text.push('\n');
        text.push_str(&normalise_until(line, zone, all_day));
    }
    let set: rrule::RRuleSet = text.parse().map_err(|_| invalid())?;
    Ok((set, all_day))
}

/// Checks a series when it is written: the rule parses, a timed series has
/// its zone.
pub(super) fn validate(body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.get("recurrence").is_some_and(|r| !r.is_null()) && !is_master(body) {
        // An empty list is no series; anything else must be a list.
        if !body
            .get("recurrence")
            .and_then(|r| r.as_array())
            .is_some_and(|r| r.is_empty())
        {
            return Err(ApiError::bad("Invalid recurrence rule."));
        }
    }
    if is_master(body) {
        rule_set(body)?;
    }
    Ok(())
}

/// The instances' starts, in order, up to `until` (and `MAX_INSTANCES`).
pub(super) fn occurrences(
    master: &Map<String, Value>,
    until: DateTime<Utc>,
) -> Result<Vec<OccStart>, ApiError> {
    let (set, all_day) = rule_set(master)?;
    let before = rrule::Tz::UTC.from_utc_datetime(&until.naive_utc());
    let dates = set.before(before).all(MAX_INSTANCES).dates;
    Ok(dates
        .into_iter()
        .map(|d| {
            let utc = d.with_timezone(&Utc);
            if all_day {
                OccStart::Date(utc.date_naive())
            } else {
                OccStart::Time(utc)
            }
        })
        .collect())
}

/// How far a listing expands series when the query does not say.
pub(super) fn default_horizon(master: &Map<String, Value>, now: DateTime<Utc>) -> DateTime<Utc> {
    let start = super::validate::event_start(master).unwrap_or(now);
    now.max(start) + Duration::days(366)
}

/// Splits an instance id into the master's id and the start it encodes.
pub(super) fn parse_instance_id(id: &str) -> Option<(&str, OccStart)> {
    let (master, stamp) = id.rsplit_once('_')?;
    if let Some(d) = NaiveDate::parse_from_str(stamp, "%Y%m%d")
        .ok()
        .filter(|_| stamp.len() == 8)
    {
        return Some((master, OccStart::Date(d)));
    }
    let t = stamp.strip_suffix('Z')?;
    let t = NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S").ok()?;
    Some((master, OccStart::Time(t.and_utc())))
}

pub(super) fn instance_id(master_id: &str, occ: OccStart) -> String {
    format!("{master_id}_{}", occ.id_suffix())
}

fn time_object(occ: OccStart, zone: Option<chrono_tz::Tz>) -> Value {
    match (occ, zone) {
        (OccStart::Date(d), _) => json!({"date": d.format("%Y-%m-%d").to_string()}),
        (OccStart::Time(t), Some(z)) => json!({
            "dateTime": t.with_timezone(&z).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "timeZone": z.name(),
        }),
        (OccStart::Time(t), None) => {
            json!({"dateTime": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
        }
    }
}

/// An instance as Google shows it: the master's fields (its private
/// extended properties too), its own id and times, no `recurrence`.
pub(super) fn instance_body(master: &Map<String, Value>, occ: OccStart) -> Map<String, Value> {
    let mut body = master.clone();
    body.remove("recurrence");
    let master_id = master
        .get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_default()
        .to_string();
    let zone = series_zone(master);
    let duration = match (
        super::validate::event_start(master),
        super::validate::event_end(master),
    ) {
        (Some(s), Some(e)) => e - s,
        _ => Duration::zero(),
    };
    let start = time_object(occ, zone);
    let end = match occ {
        OccStart::Date(d) => time_object(OccStart::Date(d + duration), zone),
        OccStart::Time(t) => time_object(OccStart::Time(t + duration), zone),
    };
    body.insert("id".into(), json!(instance_id(&master_id, occ)));
    body.insert("recurringEventId".into(), json!(master_id));
    body.insert("originalStartTime".into(), start.clone());
    body.insert("start".into(), start);
    body.insert("end".into(), end);
    body
}

/// A cancelled event as a tombstone: "Cancelled exceptions are only
/// guaranteed to have values for the id, recurringEventId and
/// originalStartTime fields populated. [...] Deleted events are only
/// guaranteed to have the id field populated." (Events resource, `status`.)
pub(super) fn tombstone(body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for k in [
        "kind",
        "etag",
        "id",
        "status",
        "updated",
        "recurringEventId",
        "originalStartTime",
    ] {
        if let Some(v) = body.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("status".into(), json!("cancelled"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(rule: &str) -> Map<String, Value> {
        json!({
            "id": "series1",
            "start": {"dateTime": "2026-12-01T10:00:00+09:00", "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": "2026-12-01T11:00:00+09:00", "timeZone": "Asia/Tokyo"},
            "recurrence": [rule],
            "extendedProperties": {"private": {"hitolinkInterviewId": "iv_1"}},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn far() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn ids(rule: &str) -> Vec<String> {
        occurrences(&master(rule), far())
            .unwrap()
            .into_iter()
            .map(|o| instance_id("series1", o))
            .collect()
    }

    #[test]
    fn weekly_and_daily_rules_expand_in_the_series_zone() {
        assert_eq!(
            ids("RRULE:FREQ=WEEKLY;COUNT=3"),
            [
                "series1_20261201T010000Z",
                "series1_20261208T010000Z",
                "series1_20261215T010000Z"
            ]
        );
        // Tuesday 1 Dec: Tue/Thu every other week, four of them
        assert_eq!(
            ids("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=4"),
            [
                "series1_20261201T010000Z",
                "series1_20261203T010000Z",
                "series1_20261215T010000Z",
                "series1_20261217T010000Z"
            ]
        );
        // UNTIL as a bare date, as Google accepts it: through that day
        assert_eq!(ids("RRULE:FREQ=DAILY;UNTIL=20261203").len(), 3);
        assert_eq!(ids("RRULE:FREQ=DAILY;UNTIL=20261202T010000Z").len(), 2);
        assert_eq!(
            ids("RRULE:FREQ=DAILY;INTERVAL=3;COUNT=2")[1],
            "series1_20261204T010000Z"
        );
    }

    #[test]
    fn instances_carry_the_masters_fields_and_their_own_times() {
        let m = master("RRULE:FREQ=DAILY;COUNT=2");
        let occ = occurrences(&m, far()).unwrap()[1];
        let i = instance_body(&m, occ);
        assert_eq!(i["id"], json!("series1_20261202T010000Z"));
        assert_eq!(i["recurringEventId"], json!("series1"));
        assert_eq!(
            i["originalStartTime"]["dateTime"],
            json!("2026-12-02T10:00:00+09:00")
        );
        assert_eq!(i["end"]["dateTime"], json!("2026-12-02T11:00:00+09:00"));
        assert_eq!(
            i["extendedProperties"]["private"]["hitolinkInterviewId"],
            json!("iv_1")
        );
        assert!(i.get("recurrence").is_none());
        assert_eq!(
            parse_instance_id("series1_20261202T010000Z"),
            Some(("series1", occ))
        );
    }

    #[test]
    fn a_timed_series_needs_its_zone_and_a_valid_rule() {
        let mut m = master("RRULE:FREQ=DAILY;COUNT=2");
        m.insert(
            "start".into(),
            json!({"dateTime": "2026-12-01T10:00:00+09:00"}),
        );
        let e = validate(&m).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.body["error"]["errors"][0]["reason"], json!("required"));
        assert_eq!(
            validate(&master("RRULE:FREQ=SOMETIMES"))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(validate(&master("BOGUS:1")).unwrap_err().status, 400);
    }

    #[test]
    fn an_endless_series_stops_at_the_horizon() {
        let m = master("RRULE:FREQ=DAILY");
        let until: DateTime<Utc> = "2026-12-11T00:00:00Z".parse().unwrap();
        assert_eq!(occurrences(&m, until).unwrap().len(), 10);
        assert_eq!(
            occurrences(&m, far()).unwrap().len(),
            MAX_INSTANCES as usize
        );
    }
}
