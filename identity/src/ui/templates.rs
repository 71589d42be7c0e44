//! The built-in UI's templates: defaults embedded in the binary (`identity/templates/ui/`),
//! each replaceable by a file of the same name in `portcullis.ui.template_override_path`.
//! All templates are compiled at start so a broken override fails the start, not a page.

use std::path::{Path, PathBuf};

use std::fmt::Write as _;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

/// The embedded defaults, by name. An override directory may replace any of them.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/ui/layout.html"),
    ),
    (
        "macros.html",
        include_str!("../../templates/ui/macros.html"),
    ),
    ("flow.html", include_str!("../../templates/ui/flow.html")),
    (
        "welcome.html",
        include_str!("../../templates/ui/welcome.html"),
    ),
    ("error.html", include_str!("../../templates/ui/error.html")),
];

/// Why the UI templates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("portcullis.ui.template_override_path: {path} is not a readable directory")]
    NoDirectory { path: PathBuf },
    #[error("UI template {name}: {source}")]
    Invalid {
        name: String,
        source: minijinja::Error,
    },
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("dir", &self.dir).finish()
    }
}

impl Templates {
    /// Loads the defaults, replaced by the files found in `dir` when given.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let dir = dir.map(Path::to_path_buf);
        if let Some(d) = &dir
            && !d.is_dir()
        {
            return Err(TemplateError::NoDirectory { path: d.clone() });
        }
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_formatter(html_formatter);
        let lookup_dir = dir.clone();
        env.set_loader(move |name| load_source(lookup_dir.as_deref(), name));
        for (name, _) in DEFAULTS {
            env.get_template(name)
                .map_err(|source| TemplateError::Invalid {
                    name: (*name).to_owned(),
                    source,
                })?;
        }
        Ok(Self { env, dir })
    }

    /// Renders one template with a context.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// Escapes strings like minijinja does, but leaves `/` alone: attribute values such as URLs and
/// base64 tokens stay readable in the page source, which is still safe in quoted attributes
/// and text.
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if !value.is_safe() && matches!(state.auto_escape(), AutoEscape::Html) => {
            for c in text.chars() {
                match c {
                    '&' => out.write_str("&amp;"),
                    '<' => out.write_str("&lt;"),
                    '>' => out.write_str("&gt;"),
                    '"' => out.write_str("&quot;"),
                    '\'' => out.write_str("&#39;"),
                    _ => out.write_char(c),
                }
                .map_err(minijinja::Error::from)?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// A template's source: the override file when there is one, else the embedded default.
/// Names that could leave the directory are refused.
fn load_source(dir: Option<&Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    if name.contains("..") || name.contains('/') || name.contains('\\') {
        return Ok(None);
    }
    if let Some(dir) = dir {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    Ok(DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| (*text).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compile() {
        Templates::load(None).unwrap();
    }

    #[test]
    fn an_override_replaces_one_template_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.html"), "custom {{ title }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.render("error.html", minijinja::context! {title => "<x>"})
                .unwrap(),
            "custom &lt;x&gt;"
        );
        let urls = minijinja::context! {login => "/l", registration => "/r"};
        let welcome = t
            .render("welcome.html", minijinja::context! {title => "Hi", urls})
            .unwrap();
        assert!(welcome.contains("<h1>Hi</h1>"), "{welcome}");
    }

    #[test]
    fn a_broken_override_fails_the_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flow.html"), "{% if %}").unwrap();
        assert!(matches!(
            Templates::load(Some(dir.path())),
            Err(TemplateError::Invalid { .. })
        ));
    }

    #[test]
    fn a_missing_directory_fails_the_load() {
        assert!(matches!(
            Templates::load(Some(Path::new("/nonexistent/portcullis-ui"))),
            Err(TemplateError::NoDirectory { .. })
        ));
    }
}
