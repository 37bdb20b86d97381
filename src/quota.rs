//! Phase 1 of a turn: the quota poll. Decides whether the active account has really hit
//! its usage limit, and starts a swap when it has.
//!
//! Structured signals come first: a transcript record with `apiErrorStatus: 429` and
//! `error: "rate_limit"` is a hit, taken once (the shell reads each record once). Pane
//! text is the fallback: the screen module only reports limit lines in the bottom region
//! that the model did not merely quote, and here a line counts only if it was not already
//! on screen when Claude last became ready (a `--resume` redraws old banners), only while
//! no launch is in flight, and only without a server error beside it. A hit with a
//! parsed reset time counts at once; one without needs `quota.confirm_polls` consecutive
//! turns. After a swap, hits are not acted on for `quota.reactivate_cooldown`. Only hits
//! from sessions running under the active account count against it. Every detection,
//! acted on or not, gets one forensic log line.

use crate::config::OnWarning;
use crate::core::{limits, Activity, Core, Kind, Ms, Observation};
use crate::screen::LimitKind;
use crate::transcript::Signal;
use crate::util::{rfc3339, snippet};

#[derive(Debug, Clone)]
struct Detection {
    session: String,
    account: String,
    source: &'static str,
    pattern: String,
    kind: Option<LimitKind>,
    reset_ms: Option<Ms>,
    line: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Swap,
    Confirming(u32, u32),
    Vetoed,
    Cooldown,
    Stale,
    OtherAccount,
    Swapping,
    Exhausted,
    Expired,
}

impl Decision {
    fn label(&self) -> String {
        match self {
            Decision::Swap => "swap".into(),
            Decision::Confirming(n, of) => format!("confirming {n}/{of}"),
            Decision::Vetoed => "vetoed".into(),
            Decision::Cooldown => "cooldown".into(),
            Decision::Stale => "stale".into(),
            Decision::OtherAccount => "other account".into(),
            Decision::Swapping => "swap in progress".into(),
            Decision::Exhausted => "all accounts exhausted".into(),
            Decision::Expired => "reset passed".into(),
        }
    }
}

impl Core {
    pub(crate) fn poll_quota(&mut self, obs: &Observation) {
        self.expire_exhaustions();
        self.leave_all_exhausted();

        let names: Vec<String> = self.state.sessions.keys().cloned().collect();
        let mut trigger: Option<Detection> = None;
        for name in names {
            let (detections, vetoed_by_transcript, stale) = self.detections(&name, obs);
            if detections.is_empty() && !stale {
                if let Some(s) = self.state.sessions.get_mut(&name) {
                    s.unconfirmed_polls = 0;
                    s.quota_note = None;
                }
                continue;
            }
            for (d, vetoed) in detections {
                let decision = self.decide(&d, vetoed || vetoed_by_transcript);
                self.forensic(&d, &decision);
                if matches!(decision, Decision::Swap) && trigger.is_none() {
                    trigger = Some(d);
                }
            }
        }

        if trigger.is_none() {
            self.poll_drain();
        }

        if let Some(d) = trigger {
            let until = d
                .reset_ms
                .filter(|t| *t > self.now_ms)
                .unwrap_or(self.now_ms + self.config.quota.default_reset.0 as i64);
            let account = d.account.clone();
            self.mark_exhausted(
                &account,
                until,
                &format!("{} in {} ({})", d.pattern, d.session, d.source),
            );
            let reason = format!(
                "usage limit of {account} seen in {} ({}, {}), resets {}",
                d.session,
                d.source,
                d.pattern,
                rfc3339(until)
            );
            self.begin_swap(None, reason, None);
        }
    }

    /// This turn's limit signals of one session, each with whether a server error beside
    /// it vetoes it; and whether the transcript reported an API error this turn.
    /// Also says whether a stale (redrawn) banner was seen, which is logged once.
    fn detections(&mut self, name: &str, obs: &Observation) -> (Vec<(Detection, bool)>, bool, bool) {
        let Some(s) = self.state.sessions.get(name) else {
            return (Vec::new(), false, false);
        };
        let mut stale_seen = false;
        let account = s.account.clone().unwrap_or_else(|| self.state.active.clone());
        let launching = matches!(s.activity, Activity::Launching { .. } | Activity::Stopping { .. });
        let stale = s.stale_hits.clone();
        let in_front = s.claude_in_front();
        let mut out = Vec::new();
        let mut api_error = false;

        for seen in obs.transcripts.iter().filter(|t| t.session == name) {
            for record in &seen.records {
                match &record.signal {
                    Signal::LimitHit { text } => {
                        let analysis = self.analyze(text);
                        if analysis.quota.is_none() && analysis.server_error.is_some() {
                            // An API-key 429 ("Request rejected") is a per-minute rate limit,
                            // not an exhausted subscription: a veto, not a hit.
                            api_error = true;
                            continue;
                        }
                        let parsed = analysis.quota;
                        out.push((
                            Detection {
                                session: name.into(),
                                account: account.clone(),
                                source: "transcript",
                                pattern: parsed
                                    .as_ref()
                                    .map(|q| q.pattern.clone())
                                    .unwrap_or_else(|| "transcript_rate_limit".into()),
                                kind: parsed.as_ref().map(|q| q.kind),
                                reset_ms: parsed.and_then(|q| q.reset_at).map(|t| t.as_millisecond()),
                                line: text.clone(),
                            },
                            false,
                        ));
                    }
                    Signal::ApiError { .. } => api_error = true,
                    _ => {}
                }
            }
        }
        // The transcript is authoritative when it spoke; the pane is the fallback.
        if out.is_empty() && in_front && !launching {
            if let Some(a) = self.analysis(name) {
                if let Some(q) = &a.quota {
                    let d = Detection {
                        session: name.into(),
                        account: account.clone(),
                        source: "pane",
                        pattern: q.pattern.clone(),
                        kind: Some(q.kind),
                        reset_ms: q.reset_at.map(|t| t.as_millisecond()),
                        line: q.line.clone(),
                    };
                    if stale.contains(&q.line) {
                        stale_seen = true;
                        self.forensic(&d, &Decision::Stale);
                    } else {
                        out.push((d, a.vetoed));
                    }
                }
            }
        }
        (out, api_error, stale_seen)
    }

    fn decide(&mut self, d: &Detection, vetoed: bool) -> Decision {
        if vetoed && d.source == "pane" {
            return Decision::Vetoed;
        }
        // A banner still on screen when its reset time has come reports a limit that is
        // over; counting it would exhaust the account again the moment it came back.
        if d.source == "pane" && d.reset_ms.is_some_and(|t| t <= self.now_ms) {
            return Decision::Expired;
        }
        let state = self.state.sessions.get_mut(&d.session).expect("session exists");
        state.limit_pending = true;
        if d.account != self.state.active {
            let until = d
                .reset_ms
                .unwrap_or(self.now_ms + self.config.quota.default_reset.0 as i64);
            let account = d.account.clone();
            if self.available(&account) {
                self.mark_exhausted(&account, until, &format!("{} in {}", d.pattern, d.session));
            }
            return Decision::OtherAccount;
        }
        if self.state.swap.is_some() {
            return Decision::Swapping;
        }
        if self.state.all_exhausted {
            return Decision::Exhausted;
        }
        if self.in_cooldown() {
            return Decision::Cooldown;
        }
        if d.reset_ms.is_some() || d.source == "transcript" {
            return Decision::Swap;
        }
        let state = self.state.sessions.get_mut(&d.session).expect("session exists");
        state.unconfirmed_polls += 1;
        let needed = self.config.quota.confirm_polls;
        if state.unconfirmed_polls >= needed {
            Decision::Swap
        } else {
            Decision::Confirming(state.unconfirmed_polls, needed)
        }
    }

    /// One line per detection and decision; repeated identical ones are not logged again.
    fn forensic(&mut self, d: &Detection, decision: &Decision) {
        let note = format!("{}|{}", decision.label(), d.line);
        let state = self.state.sessions.get_mut(&d.session).expect("session exists");
        if state.quota_note.as_deref() == Some(note.as_str()) && !matches!(decision, Decision::Swap) {
            return;
        }
        state.quota_note = Some(note);
        let kind = d.kind.map(|k| format!("{k:?}")).unwrap_or_else(|| "-".into());
        let reset = d.reset_ms.map(rfc3339).unwrap_or_else(|| "-".into());
        let message = format!(
            "quota: session={} account={} source={} pattern={} kind={} reset={} decision={} snippet=\"{}\"",
            d.session,
            d.account,
            d.source,
            d.pattern,
            kind,
            reset,
            decision.label(),
            snippet(&d.line, limits::SNIPPET_CHARS)
        );
        if matches!(decision, Decision::Swap) {
            self.warn(message);
        } else {
            self.log(message);
        }
    }

    /// Drain before the limit: an approaching-limit warning under the active account
    /// stops new dispatch; the swap follows once no pool session carries a task.
    fn poll_drain(&mut self) {
        if self.config.quota.on_warning != OnWarning::Drain || self.state.swap.is_some() || self.state.all_exhausted {
            return;
        }
        let active = self.state.active.clone();
        if self.state.draining.as_ref().is_some_and(|d| *d != active) {
            self.state.draining = None;
        }
        if self.state.draining.is_none() && !self.in_cooldown() {
            let warned = self.state.sessions.iter().find_map(|(name, s)| {
                let launching = matches!(s.activity, Activity::Launching { .. } | Activity::Stopping { .. });
                if !s.claude_in_front() || launching || s.account.as_ref().is_some_and(|a| *a != active) {
                    return None;
                }
                let w = self.analysis(name)?.warning.as_ref()?;
                (!s.stale_hits.contains(&w.line)).then(|| (name.clone(), w.line.clone()))
            });
            let Some((session, line)) = warned else { return };
            if self.next_available(&active).is_none() {
                let note = format!("warning|{line}");
                let s = self.state.sessions.get_mut(&session).expect("session exists");
                if s.quota_note.as_deref() != Some(note.as_str()) {
                    s.quota_note = Some(note);
                    self.log(format!(
                        "quota: {session}: approaching the limit of {active} (\"{}\"), but no other account is available; not draining",
                        snippet(&line, limits::SNIPPET_CHARS)
                    ));
                }
                return;
            }
            self.state.draining = Some(active.clone());
            self.warn(format!(
                "quota: {session}: approaching the limit of {active} (\"{}\"); draining: no new tasks, swap when the pool's tasks are done",
                snippet(&line, limits::SNIPPET_CHARS)
            ));
        }
        let working = self
            .state
            .sessions
            .values()
            .any(|s| s.kind == Kind::Pool && s.assignment.is_some());
        if self.state.draining.is_some() && !working {
            self.state.draining = None;
            self.begin_swap(None, format!("drained before the usage limit of {active}"), None);
        }
    }

    /// All accounts were exhausted: when the earliest reset passes, return to work.
    fn leave_all_exhausted(&mut self) {
        if !self.state.all_exhausted || self.state.swap.is_some() {
            return;
        }
        let active = self.state.active.clone();
        if self.available(&active) {
            self.state.all_exhausted = false;
            self.log(format!("account {active} is available again; work resumes"));
            return;
        }
        let next = self
            .config
            .accounts
            .iter()
            .map(|a| a.name.clone())
            .find(|n| self.available(n));
        if let Some(to) = next {
            self.state.all_exhausted = false;
            self.begin_swap(
                Some(to.clone()),
                format!("account {to} reset while all were exhausted"),
                None,
            );
        }
    }
}
