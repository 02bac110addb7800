//! Admin: a recruiter in HITO-Link's UI, and the test harness (users,
//! applications, cursors, rate limit, counters). Faults are in `gate`.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use hitosync_core::model::InterviewRecord;

use super::state::{
    Answer, ApiError, Application, HitolinkEmulator, RateWindow, User, now_jst, ok, to_json,
};
use super::writes::{apply_decline, apply_patch};

impl HitolinkEmulator {
    /// A recruiter creates an interview. `fields` may set anything of the
    /// record but the server's own fields; application and step default to
    /// the first known ones.
    pub fn admin_create(&self, fields: &Value) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let app_id = fields
            .get("application_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| st.applications.keys().next().cloned())
            .ok_or_else(|| ApiError::invalid("no application to attach the interview to"))?;
        let app = st
            .applications
            .get(&app_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("application"))?;
        let now = now_jst();
        let id = format!("iv_{:06}", st.next_id);
        st.next_id += 1;
        let blank = InterviewRecord {
            id,
            version: 1,
            application_id: app.id,
            candidate: app.candidate,
            job: app.job,
            selection_step: st.steps.values().next().cloned(),
            status: "needs_scheduling".into(),
            start: None,
            end: None,
            time_zone: "Asia/Tokyo".into(),
            format: "in_person".into(),
            location: None,
            video_conferencing_url: None,
            interviewers: vec![],
            candidate_response: "needs_action".into(),
            decline: None,
            external_event_id: None,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
        };
        let mut fields = fields.clone();
        if let Some(o) = fields.as_object_mut() {
            o.remove("application_id");
        }
        let record = apply_patch(&blank, &fields, &st.users, true)?;
        let record = InterviewRecord {
            version: 1,
            ..record
        };
        let body = to_json(&record);
        st.store(record);
        Ok(Answer { status: 201, body })
    }

    /// A recruiter edits, reschedules or cancels an interview (any field).
    pub fn admin_edit(&self, id: &str, fields: &Value) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let current = st.live(id)?.clone();
        let next = apply_patch(&current, fields, &st.users, true)?;
        Ok(ok(st.commit(current, next)))
    }

    /// A recruiter records a decline (辞退) in HITO-Link.
    pub fn admin_decline(&self, id: &str, body: &Value) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let current = st.live(id)?.clone();
        let next = apply_decline(&current, body)?;
        Ok(ok(st.commit(current, next)))
    }

    /// A recruiter deletes an interview: it stays in the feed as a tombstone.
    pub fn admin_delete(&self, id: &str) -> Result<Answer, ApiError> {
        let mut st = self.state.lock();
        let current = st.live(id)?.clone();
        let mut next = current.clone();
        next.deleted_at = Some(now_jst());
        Ok(ok(st.commit(current, next)))
    }

    pub fn add_application(&self, app: Application) {
        self.state.lock().applications.insert(app.id.clone(), app);
    }

    pub fn add_user(&self, user: User) {
        self.state
            .lock()
            .users
            .insert(user.email.to_ascii_lowercase(), user);
    }

    /// Every cursor handed out so far answers `410` from now on.
    pub fn invalidate_cursors(&self) {
        self.state.lock().cursor_epoch += 1;
    }

    /// `None` lifts the rate limit (tests and benchmarks that are not about it).
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        self.state.lock().rate = per_minute.map(|n| RateWindow {
            per_minute: n,
            recent: VecDeque::new(),
        });
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.state.lock().counters.clone()
    }

    pub fn reset_counters(&self) {
        self.state.lock().counters.clear();
    }

    /// Every record, tombstones included (for assertions).
    /// How many interviews name an event (`external_event_id` set); for
    /// watching a benchmark without copying every record.
    pub fn linked_count(&self) -> usize {
        self.state
            .lock()
            .interviews
            .values()
            .filter(|r| r.external_event_id.is_some())
            .count()
    }

    pub fn interviews(&self) -> Vec<InterviewRecord> {
        self.state.lock().interviews.values().cloned().collect()
    }
}
