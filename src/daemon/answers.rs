//! The control socket's requests, across links: `status` and `inspect`
//! are answered from the store at once (on a task of their own, so the
//! supervisor stays free); `sync` and `plan` go to the links' workers and
//! their answers are joined.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Supervisor;
use super::control::{Answer, Request};
use super::state_db::StateDbSlot;
use super::worker::Shared;
use crate::status::{self, LeaseView, StatusView};
use hitosync_engine::CycleOptions;

/// One link as `status` needs it.
struct Item {
    name: String,
    shared: Arc<Shared>,
}

impl Supervisor {
    /// The links a request names: one, or all of them.
    fn select(&self, link: Option<&str>) -> Result<Vec<String>, String> {
        match link {
            Some(name) if self.table.contains_key(name) => Ok(vec![name.to_string()]),
            Some(name) => Err(format!(
                "no link named {name:?} (the daemon serves {})",
                self.table.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            None => Ok(self.table.keys().cloned().collect()),
        }
    }

    pub(super) fn control(&self, req: Request, reply: oneshot::Sender<Answer>) {
        let link = match &req {
            Request::Status { link, .. }
            | Request::Sync { link, .. }
            | Request::Plan { link, .. }
            | Request::Inspect { link, .. } => link.clone(),
        };
        let names = match self.select(link.as_deref()) {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Answer {
                    exit_code: 2,
                    output: format!("error: {e}\n"),
                });
                return;
            }
        };
        match req {
            Request::Status { json, .. } => {
                let items: Vec<Item> = names
                    .iter()
                    .filter_map(|n| {
                        self.table.get(n).map(|s| Item {
                            name: n.clone(),
                            shared: s.shared.clone(),
                        })
                    })
                    .collect();
                let backend = self.env.backend.clone();
                let replica = self.replica.clone();
                let ttl = self.file.state.lease();
                tokio::spawn(async move {
                    let _ = reply.send(status_answer(backend, items, replica, ttl, json).await);
                });
            }
            Request::Inspect { id, json, .. } => {
                if names.len() > 1 {
                    let _ = reply.send(Answer {
                        exit_code: 2,
                        output: format!(
                            "error: the daemon serves {} links ({}): name one with --link NAME\n",
                            names.len(),
                            names.join(", ")
                        ),
                    });
                    return;
                }
                let backend = self.env.backend.clone();
                let name = names.into_iter().next().unwrap_or_default();
                tokio::spawn(async move {
                    let answer = match backend.get() {
                        Some((_, b)) => match b.store(&name, None) {
                            Ok(store) => {
                                match status::inspect_output(store.as_ref(), &id, json).await {
                                    Ok((output, exit_code)) => Answer { exit_code, output },
                                    Err(e) => error_answer(&e.to_string()),
                                }
                            }
                            Err(e) => error_answer(&e.to_string()),
                        },
                        None => error_answer("the store is not open (see `hitosync status`)"),
                    };
                    let _ = reply.send(answer);
                });
            }
            Request::Sync {
                full,
                allow_mass_delete,
                ..
            } => self.fan_out(
                names,
                CycleOptions {
                    full,
                    allow_mass_delete,
                    ..Default::default()
                },
                "hitosync sync",
                false,
                reply,
            ),
            Request::Plan { full, json, .. } => self.fan_out(
                names,
                CycleOptions {
                    full,
                    dry_run: true,
                    ..Default::default()
                },
                "hitosync plan",
                json,
                reply,
            ),
        }
    }

    /// Runs a cycle on each link and joins the answers: one link's as it
    /// is, several with a header each (or, in JSON, an object by link).
    fn fan_out(
        &self,
        names: Vec<String>,
        opts: CycleOptions,
        why: &'static str,
        json: bool,
        reply: oneshot::Sender<Answer>,
    ) {
        let mut waits = vec![];
        for name in &names {
            let (tx, rx) = oneshot::channel();
            self.cycle(name, opts.clone(), Some(tx), why, json);
            waits.push((name.clone(), rx));
        }
        tokio::spawn(async move {
            let mut answers = vec![];
            for (name, rx) in waits {
                let a = rx.await.unwrap_or(Answer {
                    exit_code: 1,
                    output: "the daemon dropped the request (shutting down?)\n".into(),
                });
                answers.push((name, a));
            }
            let _ = reply.send(join(answers, json));
        });
    }
}

fn error_answer(e: &str) -> Answer {
    Answer {
        exit_code: 1,
        output: format!("error: {e}\n"),
    }
}

/// Several links' answers as one.
fn join(mut answers: Vec<(String, Answer)>, json: bool) -> Answer {
    if answers.len() == 1 {
        return answers.remove(0).1;
    }
    let exit_code = answers.iter().map(|(_, a)| a.exit_code).max().unwrap_or(0);
    let output = if json {
        let by_link: serde_json::Map<String, serde_json::Value> = answers
            .into_iter()
            .map(|(name, a)| {
                let v =
                    serde_json::from_str(&a.output).unwrap_or(serde_json::Value::String(a.output));
                (name, v)
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({ "links": by_link })).unwrap_or_default()
            + "\n"
    } else {
        answers
            .into_iter()
            .map(|(name, a)| format!("== link {name} ==\n{}", a.output))
            .collect()
    };
    Answer { exit_code, output }
}

async fn status_answer(
    backend: Arc<StateDbSlot>,
    items: Vec<Item>,
    replica: Option<String>,
    ttl: Duration,
    json: bool,
) -> Answer {
    let Some((_, b)) = backend.get() else {
        // the store is being reopened: what memory knows
        let mut output = String::new();
        for it in &items {
            let (health, live) = it.shared.snapshot();
            if items.len() > 1 {
                output.push_str(&format!("== link {} ==\n", it.name));
            }
            output.push_str(&status::status_without_store(&health, &live, json));
        }
        return Answer {
            exit_code: 1,
            output,
        };
    };
    let leases = match b.leases(ttl).await {
        Ok(l) => l,
        Err(e) => return error_answer(&e.to_string()),
    };
    let now = chrono::Utc::now();
    let mut views: Vec<StatusView> = vec![];
    for it in &items {
        let store = match b.store(&it.name, None) {
            Ok(s) => s,
            Err(e) => return error_answer(&e.to_string()),
        };
        let mut view = match StatusView::read(store.as_ref(), now).await {
            Ok(v) => v,
            Err(e) => return error_answer(&e.to_string()),
        };
        let (health, live) = it.shared.snapshot();
        // With leases, what memory knows is current only for the links
        // that run here; the others' health is in the store.
        if leases.is_none() || live.running_here {
            view = view.with_live(health, live);
        } else if live.setup_error.is_some() {
            view.daemon = Some(live);
        }
        if let Some(l) = &leases {
            view.lease = l
                .leases
                .iter()
                .find(|r| r.link == it.name)
                .map(|r| LeaseView {
                    owner: r.owner.clone(),
                    expires_at: r.expires_at,
                    token: r.token,
                    expired: r.expired,
                    this_replica: replica.as_deref() == Some(r.owner.as_str()) && !r.expired,
                });
        }
        views.push(view);
    }
    match status::render_many(&views, leases.as_ref().map(|l| l.replicas.as_slice()), json) {
        Ok(output) => Answer {
            exit_code: 0,
            output,
        },
        Err(e) => error_answer(&e.to_string()),
    }
}
