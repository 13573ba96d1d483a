//! The notifications file on disk: read and checked with the process's environment.

use std::path::Path;

use super::spec::NotifySpec;
use super::{Notify, NotifyError};

/// Reads and checks the notifications file at `path`, secrets from the environment.
pub fn load(path: &Path) -> Result<(NotifySpec, Notify), NotifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| NotifyError {
        entry: path.display().to_string(),
        problem: format!("cannot be read: {e}"),
    })?;
    let spec = NotifySpec::from_toml(&text)?;
    let notify = Notify::from_spec(&spec, |var| std::env::var(var).ok())?;
    Ok((spec, notify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_cannot_be_read_is_named() {
        let e = load(Path::new("/nonexistent/notify.toml")).unwrap_err();
        assert_eq!(e.entry, "/nonexistent/notify.toml");
        assert!(e.problem.contains("cannot be read"), "{e}");
    }
}
