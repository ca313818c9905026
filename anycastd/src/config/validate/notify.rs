//! `[notify]`: webhook URLs, the command hook, the queue and retry settings.

use super::super::notify::{self, Notify, RawNotify};
use super::*;

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: Option<&Spanned<RawNotify>>) -> Notify {
        let d = Notify::default();
        let Some(raw) = raw else { return d };
        let r = raw.get_ref();
        let mut webhooks = Vec::new();
        for u in &r.webhooks {
            let Some(url) = self.parsed(u, "notify.webhooks entry", reqwest::Url::parse) else {
                continue;
            };
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                self.problem(
                    u.span(),
                    format!(
                        "notify.webhooks entry `{}` must be an http:// or https:// URL with a host",
                        u.get_ref()
                    ),
                );
                continue;
            }
            webhooks.push(u.get_ref().clone());
        }
        let timeout = self.positive(r.timeout.as_ref(), "notify.timeout", d.timeout);
        let coalesce = self.duration(r.coalesce.as_ref(), "notify.coalesce", d.coalesce);
        let retry_initial = self.positive(
            r.retry_initial.as_ref(),
            "notify.retry_initial",
            d.retry_initial,
        );
        let retry_max = self.positive(r.retry_max.as_ref(), "notify.retry_max", d.retry_max);
        if retry_max < retry_initial
            && let Some(s) = r.retry_max.as_ref().or(r.retry_initial.as_ref())
        {
            self.problem(
                s.span(),
                "notify.retry_max must not be shorter than notify.retry_initial",
            );
        }
        let queue = self.count(
            r.queue.as_ref(),
            "notify.queue",
            d.queue as i64,
            notify::MAX_QUEUE as i64,
        );
        let attempts = self.count(
            r.attempts.as_ref(),
            "notify.attempts",
            i64::from(d.attempts),
            1000,
        );
        let command = r.command.as_ref().and_then(|c| {
            let timeout = self.positive(
                r.command_timeout.as_ref(),
                "notify.command_timeout",
                notify::DEFAULT_COMMAND_TIMEOUT,
            );
            let Some((program, args)) = c.get_ref().split_first() else {
                self.problem(c.span(), "notify.command must name a program: [\"/path/to/program\", \"arg\", ...]");
                return None;
            };
            let path = std::path::PathBuf::from(program);
            if !path.is_absolute() {
                self.problem(
                    c.span(),
                    format!("notify.command's program `{program}` must be an absolute path (it is run directly, never through a shell)"),
                );
                return None;
            }
            Some(notify::Command {
                program: path,
                args: args.to_vec(),
                timeout,
            })
        });
        if command.is_none()
            && let Some(t) = &r.command_timeout
            && r.command.is_none()
        {
            self.problem(t.span(), "notify.command_timeout without notify.command");
        }
        Notify {
            webhooks,
            timeout,
            queue: queue as usize,
            coalesce,
            retry_initial,
            retry_max,
            attempts: attempts as u32,
            command,
        }
    }

    /// A duration that must be more than zero.
    fn positive(&mut self, s: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        let v = self.duration(s, what, default);
        if v.is_zero()
            && let Some(s) = s
        {
            self.problem(s.span(), format!("{what} must be more than 0"));
            return default;
        }
        v
    }

    /// A whole number in 1..=max.
    fn count(&mut self, v: Option<&Spanned<i64>>, what: &str, default: i64, max: i64) -> i64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !(1..=max).contains(&x) {
            self.problem(
                v.span(),
                format!("{what} must be between 1 and {max}, not {x}"),
            );
            return default;
        }
        x
    }
}
