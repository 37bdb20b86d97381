//! Accounts inside the core: which is active, which are exhausted until when, and which
//! one a swap goes to.
//!
//! Exhaustion lives in the persisted state, so a restart does not forget an exhausted
//! account (forgetting is what caused ping-pong swaps). An exhaustion whose instant has
//! passed counts as available.

use crate::core::{Core, Ms};

impl Core {
    pub(crate) fn available(&self, account: &str) -> bool {
        match self.state.accounts.get(account) {
            Some(a) => a.exhausted_until_ms.map(|t| t <= self.now_ms).unwrap_or(true),
            None => false,
        }
    }

    /// The first available account after `from` in configuration order, wrapping.
    pub(crate) fn next_available(&self, from: &str) -> Option<String> {
        let names: Vec<&str> = self.config.accounts.iter().map(|a| a.name.as_str()).collect();
        let start = names.iter().position(|n| *n == from).unwrap_or(0);
        (1..names.len())
            .map(|k| names[(start + k) % names.len()])
            .find(|n| self.available(n))
            .map(str::to_string)
    }

    pub(crate) fn mark_exhausted(&mut self, account: &str, until_ms: Ms, reason: &str) {
        if let Some(a) = self.state.accounts.get_mut(account) {
            a.exhausted_until_ms = Some(until_ms);
            a.reason = Some(reason.to_string());
        }
    }

    /// The earliest instant an exhausted account comes back, if any is exhausted.
    pub(crate) fn earliest_reset(&self) -> Option<(String, Ms)> {
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
            self.log(format!("account {name}: reset time passed, available again"));
        }
    }

    pub(crate) fn in_cooldown(&self) -> bool {
        self.state.cooldown_until_ms.is_some_and(|t| t > self.now_ms)
    }
}
