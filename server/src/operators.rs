//! Operator accounts from the server's side: loading (and on a first start, creating) the
//! operators file, and the `thermoalert operator` command that maintains it.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use thermoalert_app::auth::{self, Operators};
use tracing::{info, warn};

use crate::config::{OperatorCommand, ServeArgs, operators_file};

/// Where the first start leaves the generated admin password, in the data directory.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// The operators who may write. On a first start without a configured file, `admin` is
/// created with a random password, written to [`ADMIN_PASSWORD_FILE`] in the data directory
/// (readable by the server's user only; never logged, since logs travel): the operator reads
/// it, then changes it with `thermoalert operator add admin` and deletes the file.
pub fn load(args: &ServeArgs) -> anyhow::Result<Operators> {
    let path = operators_file(&args.operators_file, &args.data_dir);
    if args.operators_file.is_none()
        && let Some(password) = auth::bootstrap(&path)?
    {
        let secret = args.data_dir.join(ADMIN_PASSWORD_FILE);
        auth::write_private(&secret, format!("{password}\n").as_bytes())
            .with_context(|| format!("writing the admin password to {}", secret.display()))?;
        warn!(
            file = %path.display(),
            password_file = %secret.display(),
            "created operator `admin`; its password is in {} (readable by this user only; \
             change it with `thermoalert operator add admin`, then delete that file)",
            secret.display()
        );
    }
    let operators = Operators::load(&path, args.secure_cookie).with_context(
        || "THERMO_OPERATORS_FILE (create it with `thermoalert operator add NAME`)",
    )?;
    info!(file = %path.display(), operators = ?operators.names(), "operators loaded");
    Ok(operators)
}

/// `thermoalert operator …`.
pub fn run(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Add { name, operators_file: file, data_dir } => {
            let path = operators_file(&file, &data_dir);
            let password = read_password(std::io::stdin().lock())?;
            add(&path, &name, &password)?;
            println!("operator `{name}` saved in {} (restart the server to apply)", path.display());
            Ok(())
        }
    }
}

fn add(path: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    auth::add_operator(path, name, password)?;
    Ok(())
}

/// The first line of `input`, without its line ending.
fn read_password(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password on stdin (pipe it in: echo … | thermoalert operator add NAME)"
    );
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_of_stdin() {
        assert_eq!(read_password(&b"s3cret pass\nignored\n"[..]).unwrap(), "s3cret pass");
        assert_eq!(read_password(&b"crlf line\r\n"[..]).unwrap(), "crlf line");
        assert!(read_password(&b"\n"[..]).unwrap_err().to_string().contains("no password"));
    }
}
