//! The archive in a local directory: the embedded default's backend, and the reference the
//! HDFS backend must behave like.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Store, StoreError};

/// An archive rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError { op, path: path.display().to_string(), source }
}

impl Store for LocalStore {
    fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.resolve(path);
        let dir = target.parent().expect("archive paths have a directory");
        fs::create_dir_all(dir).map_err(err("create directory", dir))?;
        let tmp = target.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(err("create", &tmp))?;
        f.write_all(bytes).map_err(err("write", &tmp))?;
        f.sync_all().map_err(err("sync", &tmp))?;
        fs::rename(&tmp, &target).map_err(err("rename", &target))?;
        // The rename is durable only once the directory entry is.
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync directory", dir))
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.resolve(path);
        fs::read(&p).map_err(err("read", &p))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let p = self.resolve(dir);
        let entries = match fs::read_dir(&p) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err("list", &p)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry.map_err(err("list", &p))?.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tmp") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.write_file("/temperature_data/s1/2026-01-01/a.jsonl", b"one\n").unwrap();
        store.write_file("/temperature_data/s1/2026-01-01/b.jsonl", b"two\n").unwrap();
        assert_eq!(store.read_file("/temperature_data/s1/2026-01-01/a.jsonl").unwrap(), b"one\n");
        assert_eq!(
            store.list("/temperature_data/s1/2026-01-01").unwrap(),
            vec!["a.jsonl", "b.jsonl"]
        );
        assert_eq!(store.list("/nowhere").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn read_of_a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = LocalStore::new(dir.path()).read_file("/x/y.jsonl").unwrap_err();
        assert!(e.to_string().contains("y.jsonl"), "{e}");
    }
}
