//! Phase 1 of a turn: the quota poll. Decides whether the active account has really hit
//! its usage limit, and starts a swap when it has.
//!
//! Structured signals come first: a `StopFailure` hook with `error: "rate_limit"`
//! (source `hook`), else a transcript record with `apiErrorStatus: 429` and
//! `error: "rate_limit"` (source `transcript`), is a hit, each taken once. Pane
//! text is the fallback: the screen module only reports limit lines in the bottom region
//! that the model did not merely quote, and here a line counts only if it was not already
//! on screen when Claude last became ready (a `--resume` redraws old banners), only while
//! no launch is in flight, and only without a server error beside it. A hit with a
//! parsed reset time counts at once; one without needs `quota.confirm_polls` consecutive
//! turns. After a swap, hits are not acted on for `quota.reactivate_cooldown`. Only hits
//! from sessions running under the active account count against it. Every detection,
//! acted on or not, gets one forensic log line.
//!
//! Besides hits, the poll reads what else a session says about its account: the passive
//! gauge (a meter reading for `meters.rs`, never a hit), a line or record saying the
//! account cannot work at all (it becomes unhealthy and the fleet moves off it as on a
//! hit), and Claude wrapping a turn up before the limit (that turn is not the task's end;
//! the fleet moves at its turn boundaries). A server-side throttle that says "not your
//! usage limit" is a server error: a veto, never a hit.

use crate::config::OnWarning;
use crate::core::{limits, Activity, Core, HookEvent, Kind, Ms, Observation, UsageWindow};
use crate::event::{Event, QuotaDecision as Decision};
use crate::meters::MeterReading;
use crate::names::SessionName;
use crate::screen::{GaugeWindow, LimitKind};
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

impl Core {
    pub(crate) fn poll_quota(&mut self, obs: &Observation) {
        self.expire_exhaustions();
        self.expire_meters();
        self.leave_all_exhausted();
        self.read_gauges();
        self.poll_unusable(obs);
        self.leave_unusable_active();
        self.poll_wrap_up(obs);

        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
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
            self.poll_meters();
            self.poll_drain();
        }

        if let Some(d) = trigger {
            let until = self.exhausted_until(&d);
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
            if let Some(w) = self.state.swap.take() {
                // The target of a swap before the limit hit its own limit: that swap is
                // given up, and the swap below moves every session, moved or not, on.
                self.event(Event::SwapGivenUp { from: w.from, to: w.to });
            }
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

        // The hooks first: `StopFailure` with `rate_limit` is Claude's own word that the
        // turn hit a limit; its message carries the reset time.
        for event in self.signals_of(obs, name) {
            let HookEvent::StopFailure { error, message, .. } = event else {
                continue;
            };
            // `billing_error`: the account cannot pay for more (out of extra usage or
            // credits): spent like a limit, so the task goes on under another account.
            let pattern = match error.as_str() {
                "rate_limit" => "hook_rate_limit",
                "billing_error" => "hook_billing_error",
                _ => {
                    // Any other failure is an API error: a veto for pane text, as a record is.
                    api_error = true;
                    continue;
                }
            };
            match self.limit_detection(name, &account, "hook", pattern, message) {
                Some(d) => out.push((d, false)),
                None => api_error = true,
            }
        }
        let hooked = !out.is_empty();
        for seen in obs.transcripts.iter().filter(|t| t.session == name && !hooked) {
            for record in &seen.records {
                match &record.signal {
                    Signal::LimitHit { text } => {
                        match self.limit_detection(name, &account, "transcript", "transcript_rate_limit", text) {
                            Some(d) => out.push((d, false)),
                            None => api_error = true,
                        }
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
                        account: account.to_string(),
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

    /// A limit hit Claude itself reported (`source`: its transcript or its hook), with the
    /// reset time parsed from its message; None when the message is an API-key 429
    /// ("Request rejected"), a per-minute rate limit rather than an exhausted
    /// subscription: a veto, not a hit.
    fn limit_detection(
        &self,
        name: &str,
        account: &str,
        source: &'static str,
        fallback_pattern: &str,
        text: &str,
    ) -> Option<Detection> {
        let analysis = self.analyze(text);
        if analysis.quota.is_none() && analysis.server_error.is_some() {
            return None;
        }
        let parsed = analysis.quota;
        Some(Detection {
            session: name.into(),
            account: account.into(),
            source,
            pattern: parsed
                .as_ref()
                .map(|q| q.pattern.clone())
                .unwrap_or_else(|| fallback_pattern.into()),
            kind: parsed.as_ref().map(|q| q.kind),
            reset_ms: parsed.and_then(|q| q.reset_at).map(|t| t.as_millisecond()),
            line: text.into(),
        })
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
            let until = self.exhausted_until(d);
            let account = d.account.clone();
            if self.available(&account) {
                self.mark_exhausted(&account, until, &format!("{} in {}", d.pattern, d.session));
            }
            return Decision::OtherAccount;
        }
        // A swap before the limit has made its target active already: a hit there is that
        // account's own, and the fleet must leave it too, not wait for the old swap.
        if self.state.swap.as_ref().is_some_and(|w| !w.at_boundary) {
            return Decision::Swapping;
        }
        if self.state.all_exhausted {
            return Decision::Exhausted;
        }
        if self.in_cooldown() {
            return Decision::Cooldown;
        }
        if d.reset_ms.is_some() || d.source != "pane" {
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

    /// When the account of a hit comes back: the reset the hit printed, else the reset of
    /// the meter window the hit names (or the fuller one), else `quota.default_reset` from now.
    fn exhausted_until(&self, d: &Detection) -> Ms {
        d.reset_ms
            .filter(|t| *t > self.now_ms)
            .or_else(|| self.meter_reset(&d.account, d.kind).filter(|t| *t > self.now_ms))
            .unwrap_or(self.now_ms + self.config.quota.default_reset.0 as i64)
    }

    /// The passive gauge on a session's screen is a reading of its account's meter, taken
    /// once per line shown (it stays on screen for many turns).
    fn read_gauges(&mut self) {
        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
        for name in names {
            let s = &self.state.sessions[&name];
            let launching = matches!(s.activity, Activity::Launching { .. } | Activity::Stopping { .. });
            if !s.claude_in_front() || launching {
                continue;
            }
            let Some(g) = self.analysis(&name).and_then(|a| a.gauge.clone()) else {
                continue;
            };
            if s.gauge_line.as_deref() == Some(g.line.as_str()) {
                continue;
            }
            let account = s.account.clone().unwrap_or_else(|| self.state.active.clone());
            self.state.sessions.get_mut(&name).expect("session exists").gauge_line = Some(g.line.clone());
            let resets_at_ms = g.reset_at.map(|t| t.as_millisecond());
            if resets_at_ms.is_some_and(|t| t <= self.now_ms) {
                continue; // a gauge of a window that has reset since
            }
            let window = Some(UsageWindow {
                used_pct: g.used_pct as f64,
                resets_at_ms,
            });
            let (five_hour, seven_day) = match g.window {
                GaugeWindow::FiveHour => (window, None),
                GaugeWindow::SevenDay => (None, window),
                // One model's weekly window is not one of the account's two meters.
                GaugeWindow::ModelWeekly => continue,
            };
            self.read_meter(MeterReading {
                account,
                session: name.clone(),
                five_hour,
                seven_day,
                at_ms: self.now_ms,
                source: "gauge",
            });
        }
    }

    /// A session whose account cannot work (a 401 record, or a login/revoked/disabled
    /// line on its screen): the account becomes unhealthy, the session's turn counts as
    /// cut off (its task continues elsewhere, it is not failed), and when the account is
    /// the active one the fleet moves off it as on a hit.
    fn poll_unusable(&mut self, obs: &Observation) {
        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
        let mut move_off: Option<(String, String)> = None;
        for name in names {
            let s = &self.state.sessions[&name];
            let account = s.account.clone().unwrap_or_else(|| self.state.active.clone());
            let launching = matches!(s.activity, Activity::Launching { .. } | Activity::Stopping { .. });
            let from_record = obs.records_of(&name).find_map(|r| match &r.signal {
                Signal::ApiError {
                    status: Some(401 | 403),
                    text,
                } => Some(("transcript", text.clone())),
                _ => None,
            });
            let from_screen = self
                .analysis(&name)
                .and_then(|a| a.unusable.clone())
                .filter(|u| s.claude_in_front() && !launching && !s.stale_hits.contains(&u.line))
                .map(|u| ("pane", u.line));
            let hooks = self.signals_of(obs, &name);
            // Claude's own word (`StopFailure`) that the login or the organisation refused.
            let from_hook = hooks.iter().find_map(|e| match e {
                HookEvent::StopFailure { error, message, .. } if ACCOUNT_ERRORS.contains(&error.as_str()) => {
                    Some(("hook", format!("{error}: {message}")))
                }
                _ => None,
            });
            let worked = obs.records_of(&name).any(|r| matches!(r.signal, Signal::TurnDone))
                || hooks.iter().any(|e| matches!(e, HookEvent::Stop { .. }));
            let Some((source, line)) = from_hook.or(from_record).or(from_screen) else {
                if worked {
                    self.mark_healthy(&account, &format!("a turn in {name} finished"));
                }
                continue;
            };
            let s = self.state.sessions.get_mut(&name).expect("session exists");
            // Taken once: the line stays on screen, and is history from now on.
            s.stale_hits.push(line.clone());
            if s.assignment.is_some() {
                s.limit_pending = true;
            }
            let reason = format!("{} ({name}, {source})", snippet(&line, limits::SNIPPET_CHARS));
            self.mark_unhealthy(&account, &reason);
            if account == self.state.active && move_off.is_none() {
                move_off = Some((account.to_string(), reason));
            }
        }
        if let Some((account, reason)) = move_off {
            if self.state.swap.as_ref().is_none_or(|w| w.at_boundary) && !self.state.all_exhausted {
                if let Some(w) = self.state.swap.take() {
                    // The boundary swap under way went to this account: its members still
                    // under the old one are taken along by the hard swap below.
                    self.state.active = w.to;
                }
                self.begin_swap(None, format!("account {account} cannot work: {reason}"), None);
            }
        }
    }

    /// Claude wraps a turn up because the limit is near: that turn is not the task's end
    /// (the watcher does not finish it), and the fleet moves at its turn boundaries.
    fn poll_wrap_up(&mut self, obs: &Observation) {
        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
        let mut trigger = None;
        for name in names {
            let s = &self.state.sessions[&name];
            if !matches!(s.activity, Activity::Working { .. }) || s.assignment.is_none() || s.wrapped_up {
                continue;
            }
            let from_record = obs.records_of(&name).find_map(|r| match &r.signal {
                Signal::UserPrompt { text } if is_wrap_up_prompt(text) => Some(text.clone()),
                _ => None,
            });
            let from_screen = self
                .analysis(&name)
                .and_then(|a| a.wrap_up.clone())
                .filter(|l| !s.stale_hits.contains(l));
            let Some(line) = from_record.or(from_screen) else {
                continue;
            };
            let account = s.account.clone().unwrap_or_else(|| self.state.active.clone());
            let s = self.state.sessions.get_mut(&name).expect("session exists");
            s.wrapped_up = true;
            s.stale_hits.push(line.clone());
            self.event(Event::WrappingUp {
                session: name.clone(),
                account: account.clone(),
                snippet: snippet(&line, limits::SNIPPET_CHARS),
            });
            if account == self.state.active && trigger.is_none() {
                trigger = Some((name, account));
            }
        }
        let Some((session, account)) = trigger else { return };
        if self.state.swap.is_some() || self.state.all_exhausted {
            return;
        }
        if let Some(to) = self.pick_target(&account) {
            self.begin_boundary_swap(
                to,
                format!("claude in {session} is wrapping up before the limit of {account}"),
            );
        }
    }

    /// One line per detection and decision; repeated identical ones are not logged again.
    fn forensic(&mut self, d: &Detection, decision: &Decision) {
        let note = format!("{}|{}", decision, d.line);
        let state = self.state.sessions.get_mut(&d.session).expect("session exists");
        if state.quota_note.as_deref() == Some(note.as_str()) && !matches!(decision, Decision::Swap) {
            return;
        }
        state.quota_note = Some(note);
        self.event(Event::LimitDetected {
            session: d.session.clone().into(),
            account: d.account.clone().into(),
            source: d.source.to_string(),
            pattern: d.pattern.clone(),
            kind: d.kind,
            reset_ms: d.reset_ms,
            decision: decision.clone(),
            snippet: snippet(&d.line, limits::SNIPPET_CHARS),
        });
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
        // Where the account has a meter, `swap_at` decides (see `meters.rs`).
        let metered =
            self.config.quota.swap_at > 0 && self.state.accounts.get(&active).is_some_and(|a| a.usage.is_some());
        if metered {
            self.state.draining = None;
            return;
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
            if self.pick_target(&active).is_none() {
                let note = format!("warning|{line}");
                let s = self.state.sessions.get_mut(&session).expect("session exists");
                if s.quota_note.as_deref() != Some(note.as_str()) {
                    s.quota_note = Some(note);
                    self.event(Event::ApproachingLimit {
                        session,
                        account: active,
                        snippet: snippet(&line, limits::SNIPPET_CHARS),
                        draining: false,
                    });
                }
                return;
            }
            self.state.draining = Some(active.clone());
            self.event(Event::ApproachingLimit {
                session,
                account: active.clone(),
                snippet: snippet(&line, limits::SNIPPET_CHARS),
                draining: true,
            });
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

    /// The active account was disabled or found unhealthy while no swap could start (at
    /// start-up, after `ccl account disable` without a daemon): the fleet moves off it.
    fn leave_unusable_active(&mut self) {
        let active = self.state.active.clone();
        let Some(acc) = self.state.accounts.get(&active) else {
            return;
        };
        let why = match (&acc.unhealthy, acc.disabled) {
            (Some(why), _) => format!("account {active} cannot work: {why}"),
            (None, true) => format!("account {active} is disabled"),
            (None, false) => return,
        };
        if self.state.swap.is_none() && !self.state.all_exhausted {
            self.begin_swap(None, why, None);
        }
    }

    /// All accounts were exhausted: when the earliest reset passes, return to work.
    fn leave_all_exhausted(&mut self) {
        if !self.state.all_exhausted || self.state.swap.is_some() {
            return;
        }
        let active = self.state.active.clone();
        if self.usable(&active) {
            self.state.all_exhausted = false;
            self.event(Event::WorkResumes { account: active });
            return;
        }
        let next = self
            .config
            .accounts
            .iter()
            .map(|a| a.name.clone())
            .find(|n| self.usable(n));
        if let Some(to) = next {
            self.state.all_exhausted = false;
            self.begin_swap(
                Some(to.to_string()),
                format!("account {to} reset while all were exhausted"),
                None,
            );
        }
    }
}

/// `StopFailure` errors that say the account cannot work at all (as opposed to a limit
/// or a server problem).
const ACCOUNT_ERRORS: &[&str] = &["authentication_failed", "oauth_org_not_allowed"];

/// The request Claude injects to wrap a turn up before the limit.
fn is_wrap_up_prompt(text: &str) -> bool {
    text.trim_start()
        .starts_with("[Usage limit approaching. Checkpoint now:")
}
