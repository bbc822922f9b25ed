//! Webhooks from the environment, for deployments configured by an environment file (systemd's
//! `EnvironmentFile`, PM2): one variable per field,
//! `SELLERSYNC_NOTIFICATIONS__WEBHOOKS__<NAME>__<FIELD>` with the fields `URL`, `SECRET` (both
//! required), `EVENTS` (comma-separated; absent: every event) and `FORMAT` (`json` or `slack`).
//! `<NAME>` becomes the webhook's name, lower-cased.
//!
//! They are added to the webhooks of the configuration files (`[[notifications.webhooks]]`)
//! rather than replacing them. Every mistake is reported naming the variable; a URL's or secret's
//! value never appears in a message.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

use crate::jobs::notify::{EventType, Format};

/// Every webhook variable starts with this (matched without regard to case, as figment does).
pub const PREFIX: &str = "SELLERSYNC_NOTIFICATIONS__WEBHOOKS";

/// The settings of one webhook that a variable may set.
const FIELDS: [&str; 4] = ["url", "secret", "events", "format"];

/// The webhook variables of an environment, as a figment provider: it yields
/// `notifications.webhooks` as a list, to be `admerge`d onto the files' list.
pub struct EnvWebhooks {
    vars: Vec<(String, String)>,
}

impl EnvWebhooks {
    /// The webhook variables of this process's environment.
    pub fn from_process() -> Self {
        Self::new(
            std::env::vars_os()
                .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?))),
        )
    }

    /// The webhook variables among `vars` (any others are left out).
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars = vars.into_iter().filter(|(key, _)| is_webhook_var(key)).collect();
        Self { vars }
    }

    /// Each webhook's fields by its name, checked.
    fn webhooks(&self) -> Result<BTreeMap<String, Dict>, Mistake> {
        let mut hooks: BTreeMap<String, Dict> = BTreeMap::new();
        for (var, value) in &self.vars {
            let (name, field) = name_and_field(var)?;
            let value = parse_field(var, &field, value)?;
            hooks.entry(name).or_default().insert(field, value);
        }
        for (name, fields) in &hooks {
            for required in ["url", "secret"] {
                if !fields.contains_key(required) {
                    return Err(error(
                        &var_name(name, required),
                        "is required: every webhook needs a url and a secret",
                    ));
                }
            }
        }
        Ok(hooks)
    }
}

/// True for `SELLERSYNC_NOTIFICATIONS__WEBHOOKS` and everything below it.
pub fn is_webhook_var(key: &str) -> bool {
    key.get(..PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
}

impl Provider for EnvWebhooks {
    fn metadata(&self) -> Metadata {
        Metadata::named("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__* environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let hooks = self.webhooks().map_err(Error::from)?;
        if hooks.is_empty() {
            return Ok(Map::new());
        }
        let list: Vec<Value> = hooks
            .into_iter()
            .map(|(name, mut fields)| {
                fields.insert("name".into(), Value::from(name));
                Value::from(fields)
            })
            .collect();
        let notifications = Dict::from([("webhooks".to_owned(), Value::from(list))]);
        let root = Dict::from([("notifications".to_owned(), Value::from(notifications))]);
        Ok(Profile::Default.collect(root))
    }
}

/// `SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL` is webhook `ops`, field `url`.
fn name_and_field(var: &str) -> Result<(String, String), Mistake> {
    let rest = var[PREFIX.len()..].strip_prefix("__").unwrap_or("");
    let parts: Vec<&str> = rest.split("__").collect();
    let [name, field] = parts[..] else {
        return Err(error(
            var,
            "set one field per variable: SELLERSYNC_NOTIFICATIONS__WEBHOOKS__<NAME>__URL, __SECRET, __EVENTS, __FORMAT",
        ));
    };
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(error(var, "the webhook's name may use letters, digits and '_'"));
    }
    let field = field.to_ascii_lowercase();
    if !FIELDS.contains(&field.as_str()) {
        return Err(error(
            var,
            "unknown webhook field (expected URL, SECRET, EVENTS or FORMAT)",
        ));
    }
    Ok((name.to_ascii_lowercase(), field))
}

/// A field's value as the webhook's settings take it; `events` is a comma-separated list.
fn parse_field(var: &str, field: &str, value: &str) -> Result<Value, Mistake> {
    let value = value.trim();
    match field {
        "url" if !(value.starts_with("https://") || value.starts_with("http://")) => {
            Err(error(var, "must be an http(s) URL"))
        }
        "secret" if value.is_empty() => Err(error(var, "must not be empty: every request is signed")),
        "events" => {
            let events: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            for event in &events {
                serde_json::from_value::<EventType>(event.as_str().into()).map_err(|_| {
                    error(
                        var,
                        &format!(
                            "unknown event {event:?} (expected job.failed, user.reauthorization_required, queue.unhealthy or tick.failed)"
                        ),
                    )
                })?;
            }
            Ok(Value::from(events))
        }
        "format" => {
            serde_json::from_value::<Format>(value.into())
                .map_err(|_| error(var, &format!("unknown format {value:?} (expected json or slack)")))?;
            Ok(Value::from(value.to_owned()))
        }
        _ => Ok(Value::from(value.to_owned())),
    }
}

fn var_name(name: &str, field: &str) -> String {
    format!(
        "{PREFIX}__{}__{}",
        name.to_ascii_uppercase(),
        field.to_ascii_uppercase()
    )
}

/// A variable that is wrong, and what is wrong with it.
struct Mistake {
    var: String,
    problem: String,
}

fn error(var: &str, problem: &str) -> Mistake {
    Mistake {
        var: var.to_owned(),
        problem: problem.to_owned(),
    }
}

/// figment's error, whose path is the variable, so the configuration error names it as it is.
impl From<Mistake> for Error {
    fn from(mistake: Mistake) -> Self {
        let mut error = Error::from(mistake.problem);
        error.path = vec![mistake.var];
        error
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format as _, Toml};

    use super::*;
    use crate::jobs::notify::NotificationSettings;

    const FILE: &str = r#"
        [notifications]
        timeout_ms = 5000
        replay_window_secs = 300
        health_check_interval_ms = 60000
        unhealthy_repeat_ms = 3600000
        allow_private_targets = false
        [[notifications.webhooks]]
        name = "from-file"
        url = "https://file.example/hook"
        secret = "file-secret-at-least-32-bytes-long-0001"
    "#;

    /// Variables as a test writes them.
    type Vars<'a> = &'a [(&'a str, &'a str)];

    fn load(vars: Vars<'_>) -> Result<NotificationSettings, Box<Error>> {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Figment::new()
            .merge(Toml::string(FILE))
            .admerge(EnvWebhooks::new(vars))
            .extract_inner("notifications")
            .map_err(Box::new)
    }

    fn problem(vars: Vars<'_>) -> (String, String) {
        let error = load(vars).expect_err("refused");
        (error.path.join("."), error.to_string())
    }

    #[test]
    fn environment_webhooks_are_added_to_the_files() {
        let settings = load(&[
            (
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL",
                "https://hooks.example/ops",
            ),
            (
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__SECRET",
                "ops-secret-at-least-32-bytes-long-0001",
            ),
            (
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__EVENTS",
                "job.failed, queue.unhealthy",
            ),
            ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__FORMAT", "slack"),
            (
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__PAGER__URL",
                "https://pager.example/in",
            ),
            (
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__PAGER__SECRET",
                "pager-secret-at-least-32-bytes-long-01",
            ),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        let names: Vec<&str> = settings.webhooks.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["from-file", "ops", "pager"]);
        let ops = &settings.webhooks[1];
        assert_eq!(ops.url.expose(), "https://hooks.example/ops");
        assert_eq!(ops.events, [EventType::JobFailed, EventType::QueueUnhealthy]);
        assert_eq!(ops.format, Format::Slack);
        assert!(settings.webhooks[2].events.is_empty(), "absent: every event");
        settings.validate().unwrap();
    }

    #[test]
    fn mistakes_name_the_variable_and_never_the_url_or_secret() {
        let url = (
            "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL",
            "https://hooks.example/t0ken",
        );
        let secret = ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__SECRET", "s3cret-value");
        let cases: [(Vars<'_>, &str, &str); 6] = [
            (
                &[url],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__SECRET",
                "required",
            ),
            (
                &[
                    url,
                    secret,
                    ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__COLOUR", "red"),
                ],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__COLOUR",
                "unknown webhook field",
            ),
            (
                &[
                    url,
                    secret,
                    ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__EVENTS", "job.fail"),
                ],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__EVENTS",
                "job.fail",
            ),
            (
                &[
                    ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL", "ftp://t0ken@x"),
                    secret,
                ],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL",
                "http(s)",
            ),
            (
                &[("SELLERSYNC_NOTIFICATIONS__WEBHOOKS", "[{name=\"x\"}]")],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS",
                "one field per variable",
            ),
            (
                &[
                    url,
                    secret,
                    ("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__FORMAT", "xml"),
                ],
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__FORMAT",
                "json or slack",
            ),
        ];
        for (vars, var, says) in cases {
            let (path, message) = problem(vars);
            assert_eq!(path, var, "{message}");
            assert!(message.contains(says), "{var}: {message}");
            for secret in ["t0ken", "s3cret-value"] {
                assert!(!message.contains(secret), "{secret} leaked: {message}");
            }
        }
    }
}
