//! Accounts inside the core: which is active, which are exhausted until when, which
//! cannot work (unhealthy) or were taken out by hand (disabled). Which one a swap goes to
//! is `meters.rs`'s `pick_target`.
//!
//! Exhaustion lives in the persisted state, so a restart does not forget an exhausted
//! account (forgetting is what caused ping-pong swaps). An exhaustion whose instant has
//! passed counts as available.

use crate::core::{Core, Ms};
use crate::event::Event;
use crate::names::AccountName;

impl Core {
    pub(crate) fn available(&self, account: &str) -> bool {
        match self.state.accounts.get(account) {
            Some(a) => a.exhausted_until_ms.map(|t| t <= self.now_ms).unwrap_or(true),
            None => false,
        }
    }

    /// Not exhausted, not unhealthy, not disabled: an account work can go to.
    pub(crate) fn usable(&self, account: &str) -> bool {
        self.available(account)
            && self
                .state
                .accounts
                .get(account)
                .is_some_and(|a| a.unhealthy.is_none() && !a.disabled)
    }

    /// The account cannot work (login revoked or expired, organisation disabled). The
    /// first time: a warning and the `on_account_unhealthy` hook. True when it was news.
    pub(crate) fn mark_unhealthy(&mut self, account: &str, reason: &str) -> bool {
        let Some(a) = self.state.accounts.get_mut(account) else {
            return false;
        };
        if a.unhealthy.is_some() {
            return false;
        }
        a.unhealthy = Some(reason.to_string());
        self.event(Event::AccountUnhealthy {
            account: account.into(),
            reason: reason.to_string(),
        });
        self.hook(
            "on_account_unhealthy",
            vec![("CCL_ACCOUNT", account.to_string()), ("CCL_REASON", reason.to_string())],
        );
        true
    }

    /// A session under the account worked: it is healthy again.
    pub(crate) fn mark_healthy(&mut self, account: &str, why: &str) {
        let Some(a) = self.state.accounts.get_mut(account) else {
            return;
        };
        if a.unhealthy.take().is_some() {
            self.event(Event::AccountHealthy {
                account: account.into(),
                why: why.to_string(),
            });
        }
    }

    pub(crate) fn mark_exhausted(&mut self, account: &str, until_ms: Ms, reason: &str) {
        if let Some(a) = self.state.accounts.get_mut(account) {
            a.exhausted_until_ms = Some(until_ms);
            a.reason = Some(reason.to_string());
        }
    }

    /// The earliest instant an exhausted account comes back, if any is exhausted.
    pub(crate) fn earliest_reset(&self) -> Option<(AccountName, Ms)> {
        self.config
            .accounts
            .iter()
            .filter_map(|a| {
                let t = self.state.accounts.get(&a.name)?.exhausted_until_ms?;
                Some((a.name.clone(), t))
            })
            .min_by_key(|(_, t)| *t)
    }

    /// Clears exhaustions whose instant has passed, with a log line each.
    pub(crate) fn expire_exhaustions(&mut self) {
        let now = self.now_ms;
        let mut back = Vec::new();
        for (name, a) in self.state.accounts.iter_mut() {
            if a.exhausted_until_ms.is_some_and(|t| t <= now) {
                a.exhausted_until_ms = None;
                a.reason = None;
                back.push(name.clone());
            }
        }
        for name in back {
            self.event(Event::AccountBack { account: name });
        }
    }

    pub(crate) fn in_cooldown(&self) -> bool {
        self.state.cooldown_until_ms.is_some_and(|t| t > self.now_ms)
    }
}

#[cfg(test)]
mod tests {
    use crate::core::tests::config;
    use crate::core::{Core, Kind, Observation, Seen, SessionState, State, TranscriptSeen};
    use crate::transcript::{Record, Signal};

    /// An unhealthy account comes back when a turn under it finishes, not before.
    #[test]
    fn an_unhealthy_account_is_healthy_again_when_a_session_under_it_works() {
        let mut state = State::fresh(&config(), 1);
        state.accounts.get_mut("b").unwrap().unhealthy = Some("OAuth token has been revoked".into());
        let mut s = SessionState::new(Kind::Pool);
        s.seen = Seen::Idle;
        s.account = Some("b".into());
        s.conversation = Some("0b1c2d3e-0000-4000-8000-000000000001".into());
        state.sessions.insert("ccl-auto-11".into(), s);
        let mut core = Core::new(config(), state, "UTC");
        assert!(!core.usable("b"));
        let record = |signal| TranscriptSeen {
            session: "ccl-auto-11".into(),
            conversation: "0b1c2d3e-0000-4000-8000-000000000001".into(),
            records: vec![Record {
                uuid: "r1".into(),
                timestamp: None,
                signal,
            }],
        };
        let obs = |t| Observation {
            now_ms: 1_000,
            transcripts: vec![t],
            ..Default::default()
        };
        core.poll_quota(&obs(record(Signal::UserPrompt { text: "hi".into() })));
        assert!(!core.usable("b"), "a prompt taken is not a turn that worked");
        core.poll_quota(&obs(record(Signal::TurnDone)));
        assert!(core.usable("b"));
        assert_eq!(core.state().accounts["b"].unhealthy, None);
    }
}
