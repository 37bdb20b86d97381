//! Account meters inside the core: how much of each account's 5-hour and weekly window
//! is used, when each window resets, and the swap that moves the fleet before the limit.
//!
//! A reading ([`MeterReading`]) comes from any session running under an account: Claude's
//! status line (`rate_limits`, through ccl's `--settings`) or, where no status line
//! reports, the passive gauge on its screen ("You've used 97% of your 5-hour limit ·
//! resets 9:48pm"). Meters live in the persisted state with the instant they were read,
//! and a window whose reset instant has passed is dropped: unknown counts as fresh.
//!
//! When the active account's meter reaches `quota.swap_at`, the fleet moves to the
//! account with the most headroom below that mark at each session's own turn boundary
//! (`Swap::at_boundary`, carried out in `swap.rs`), so no turn is cut off by the limit.
//! When every account is at or above the mark, the fleet stays where it is and keeps
//! working; a hit then goes to the account with the most headroom (`pick_target`).

use crate::core::{Core, Ms, Usage, UsageWindow};
use crate::event::Event;
use crate::names::{AccountName, SessionName};
use crate::screen::LimitKind;
use crate::util::rfc3339;

/// One reading of an account's meters, as a session under it reported them. The status
/// line's `rate_limits` and the screen's gauge both arrive as this.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterReading {
    pub account: AccountName,
    pub session: SessionName,
    /// `None`: this reading says nothing about the window (the last known value stays).
    pub five_hour: Option<UsageWindow>,
    pub seven_day: Option<UsageWindow>,
    pub at_ms: Ms,
    /// Where it was read: `status line` or `gauge`.
    pub source: &'static str,
}

/// The higher of an account's two windows, in percent; unknown windows count as 0.
pub fn used_pct(usage: Option<&Usage>) -> f64 {
    usage
        .map(|u| {
            [&u.five_hour, &u.seven_day]
                .into_iter()
                .flatten()
                .map(|w| w.used_pct)
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0)
}

impl Core {
    /// Takes one reading into the account's meters. A window the reading leaves out keeps
    /// its last value (the API leaves them out of an answer that was refused).
    pub fn read_meter(&mut self, reading: MeterReading) {
        let Some(a) = self.state.accounts.get_mut(&reading.account) else {
            return;
        };
        let before = used_pct(a.usage.as_ref());
        let usage = a.usage.get_or_insert(Usage {
            five_hour: None,
            seven_day: None,
            seen_ms: reading.at_ms,
            session: reading.session.clone(),
        });
        if reading.five_hour.is_some() {
            usage.five_hour = reading.five_hour;
        }
        if reading.seven_day.is_some() {
            usage.seven_day = reading.seven_day;
        }
        usage.seen_ms = reading.at_ms;
        usage.session = reading.session.clone();
        let after = used_pct(a.usage.as_ref());
        let swap_at = self.config.quota.swap_at as f64;
        if swap_at > 0.0 && before < swap_at && after >= swap_at {
            self.event(Event::MeterAtSwapAt {
                account: reading.account.clone(),
                used_pct: after,
                swap_at_pct: swap_at,
                source: reading.source.to_string(),
                session: reading.session.clone(),
            });
        }
        // A status line comes with an answer the account gave: it works.
        if reading.source == "status line" {
            self.mark_healthy(&reading.account, &format!("{} got an answer", reading.session));
        }
    }

    /// Drops every window whose reset instant has passed, with a log line each.
    pub(crate) fn expire_meters(&mut self) {
        let now = self.now_ms;
        let mut cleared = Vec::new();
        for (name, a) in self.state.accounts.iter_mut() {
            let Some(u) = a.usage.as_mut() else { continue };
            for (label, w) in [("5-hour", &mut u.five_hour), ("weekly", &mut u.seven_day)] {
                if w.as_ref().and_then(|w| w.resets_at_ms).is_some_and(|t| t <= now) {
                    *w = None;
                    cleared.push(Event::MeterWindowReset {
                        account: name.into(),
                        window: label.to_string(),
                    });
                }
            }
            if u.five_hour.is_none() && u.seven_day.is_none() {
                a.usage = None;
            }
        }
        for event in cleared {
            self.event(event);
        }
    }

    /// The account's use in percent (the fuller window; unknown = 0).
    pub(crate) fn used(&self, account: &str) -> f64 {
        used_pct(self.state.accounts.get(account).and_then(|a| a.usage.as_ref()))
    }

    /// Where the fleet goes from `from`: among accounts that are not exhausted, unhealthy
    /// or disabled and whose meter is below 100 %, the one with the most headroom below
    /// `swap_at` (unknown meters count as fresh); with none below it, the one with the
    /// most headroom. Ties go to failover order, counted from the account after `from`.
    pub(crate) fn pick_target(&self, from: &str) -> Option<String> {
        let names: Vec<&str> = self.config.accounts.iter().map(|a| a.name.as_str()).collect();
        let start = names.iter().position(|n| *n == from).unwrap_or(0);
        let candidates: Vec<(&str, f64)> = (1..=names.len())
            .map(|k| names[(start + k) % names.len()])
            .filter(|n| *n != from && self.usable(n))
            .map(|n| (n, self.used(n)))
            .filter(|(_, used)| *used < 100.0)
            .collect();
        let swap_at = self.config.quota.swap_at as f64;
        let below: Vec<(&str, f64)> = candidates
            .iter()
            .copied()
            .filter(|(_, used)| swap_at <= 0.0 || *used < swap_at)
            .collect();
        let pool = if below.is_empty() { candidates } else { below };
        // `min_by` keeps the first of equals: failover order breaks ties.
        pool.into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, _)| n.to_string())
    }

    /// The swap before the limit: the active account's meter has reached `swap_at`, so
    /// the fleet moves at its turn boundaries to an account below it. With every account
    /// at or above the mark, the fleet stays and keeps working (logged once).
    pub(crate) fn poll_meters(&mut self) {
        let swap_at = self.config.quota.swap_at as f64;
        if swap_at <= 0.0 || self.state.swap.is_some() || self.state.all_exhausted {
            return;
        }
        let active = self.state.active.clone();
        let used = self.used(&active);
        if used < swap_at {
            self.state.all_over_swap_at = false;
            return;
        }
        let target = self.pick_target(&active).filter(|t| self.used(t) < swap_at);
        let Some(to) = target else {
            if !self.state.all_over_swap_at {
                self.state.all_over_swap_at = true;
                self.event(Event::MeterNoTarget {
                    account: active,
                    used_pct: used,
                    swap_at_pct: swap_at,
                });
            }
            return;
        };
        self.state.all_over_swap_at = false;
        let (window, reset) = self.fuller_window(&active);
        let reason = format!(
            "meter of {active} at {used:.0}% of its {window} window (swap_at {swap_at:.0}%){}",
            reset.map(|t| format!(", resets {}", rfc3339(t))).unwrap_or_default()
        );
        self.begin_boundary_swap(to, reason);
    }

    /// The name and reset instant of the account's fuller window.
    fn fuller_window(&self, account: &str) -> (&'static str, Option<Ms>) {
        let Some(u) = self.state.accounts.get(account).and_then(|a| a.usage.as_ref()) else {
            return ("5-hour", None);
        };
        let five = u.five_hour.as_ref().map(|w| w.used_pct).unwrap_or(0.0);
        let seven = u.seven_day.as_ref().map(|w| w.used_pct).unwrap_or(0.0);
        if seven > five {
            ("weekly", u.seven_day.as_ref().and_then(|w| w.resets_at_ms))
        } else {
            ("5-hour", u.five_hour.as_ref().and_then(|w| w.resets_at_ms))
        }
    }

    /// When an account that hit a limit of `kind` comes back, by its meters: the reset of
    /// the window that kind names (5-hour or weekly), else of its fuller window. None when
    /// the meters know no reset.
    pub(crate) fn meter_reset(&self, account: &str, kind: Option<LimitKind>) -> Option<Ms> {
        let u = self.state.accounts.get(account)?.usage.as_ref()?;
        let reset = |w: &Option<UsageWindow>| w.as_ref().and_then(|w| w.resets_at_ms);
        match kind {
            Some(LimitKind::FiveHour | LimitKind::Session) => reset(&u.five_hour),
            Some(LimitKind::Weekly | LimitKind::ModelWeekly) => reset(&u.seven_day),
            _ => {
                let five = u.five_hour.as_ref().map_or(-1.0, |w| w.used_pct);
                let seven = u.seven_day.as_ref().map_or(-1.0, |w| w.used_pct);
                if seven > five {
                    reset(&u.seven_day)
                } else {
                    reset(&u.five_hour)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{tests::config, State};

    fn window(used_pct: f64, resets_at_ms: Option<Ms>) -> Option<UsageWindow> {
        Some(UsageWindow { used_pct, resets_at_ms })
    }

    fn reading(account: &str, five: f64, resets_at_ms: Ms) -> MeterReading {
        MeterReading {
            account: account.into(),
            session: "ccl-auto-11".into(),
            five_hour: window(five, Some(resets_at_ms)),
            seven_day: None,
            at_ms: 0,
            source: "gauge",
        }
    }

    #[test]
    fn a_reading_keeps_the_window_it_does_not_mention() {
        let mut core = Core::new(config(), State::fresh(&config(), 1), "UTC");
        core.read_meter(MeterReading {
            seven_day: window(31.0, Some(9_000)),
            ..reading("a", 82.0, 5_000)
        });
        core.read_meter(MeterReading {
            seven_day: None,
            ..reading("a", 90.0, 5_000)
        });
        let u = core.state().accounts["a"].usage.clone().unwrap();
        assert_eq!(u.five_hour, window(90.0, Some(5_000)));
        assert_eq!(u.seven_day, window(31.0, Some(9_000)));
        assert_eq!(core.used("a"), 90.0);
        assert_eq!(core.used("b"), 0.0, "unknown counts as fresh");
    }

    #[test]
    fn a_window_is_forgotten_when_it_resets() {
        let mut core = Core::new(config(), State::fresh(&config(), 1), "UTC");
        core.read_meter(MeterReading {
            seven_day: window(31.0, Some(9_000)),
            ..reading("a", 82.0, 5_000)
        });
        core.now_ms = 4_999;
        core.expire_meters();
        assert_eq!(core.used("a"), 82.0);
        core.now_ms = 5_000;
        core.expire_meters();
        assert_eq!(core.used("a"), 31.0, "the 5-hour window reset, the weekly one did not");
        core.now_ms = 9_000;
        core.expire_meters();
        assert_eq!(core.state().accounts["a"].usage, None);
    }

    #[test]
    fn a_hit_without_a_printed_reset_takes_its_windows_reset_from_the_meter() {
        let mut core = Core::new(config(), State::fresh(&config(), 1), "UTC");
        core.read_meter(MeterReading {
            seven_day: window(64.0, Some(90_000)),
            ..reading("a", 99.0, 5_000)
        });
        assert_eq!(core.meter_reset("a", Some(LimitKind::FiveHour)), Some(5_000));
        assert_eq!(core.meter_reset("a", Some(LimitKind::Weekly)), Some(90_000));
        assert_eq!(core.meter_reset("a", None), Some(5_000), "the fuller window");
        assert_eq!(core.meter_reset("b", None), None);
    }
}
