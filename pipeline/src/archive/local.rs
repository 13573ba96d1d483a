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

/// Whether a file is empty or ends with a newline (no torn last record).
fn ends_with_newline(f: &mut fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
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

    fn delete_file(&self, path: &str) -> Result<(), StoreError> {
        let target = self.resolve(path);
        match fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("delete", &target)(e)),
            _ => Ok(()),
        }
    }

    fn append_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.resolve(path);
        let dir = target.parent().expect("archive paths have a directory");
        let created = !target.exists();
        if created {
            fs::create_dir_all(dir).map_err(err("create directory", dir))?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&target)
            .map_err(err("open", &target))?;
        if !created && !ends_with_newline(&mut f).map_err(err("read", &target))? {
            f.write_all(b"\n").map_err(err("write", &target))?;
        }
        f.write_all(bytes).map_err(err("write", &target))?;
        f.sync_data().map_err(err("sync", &target))?;
        if created {
            // A new file's directory entry must be durable too.
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync directory", dir))?;
        }
        Ok(())
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

    fn concurrent_appends(&self) -> usize {
        // Each append waits for its own fsync; the disk takes several at once.
        4
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
    fn appends_accumulate_and_a_torn_last_line_is_closed_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = "/temperature_data/s1/2026-01-01/00_w-000.jsonl";
        store.append_file(path, b"one\n").unwrap();
        store.append_file(path, b"two\n").unwrap();
        assert_eq!(store.read_file(path).unwrap(), b"one\ntwo\n");
        // A crash mid-append leaves half a line; the next append starts on a fresh line.
        let on_disk = dir.path().join(path.trim_start_matches('/'));
        let mut f = fs::OpenOptions::new().append(true).open(&on_disk).unwrap();
        f.write_all(b"{\"torn").unwrap();
        store.append_file(path, b"three\n").unwrap();
        assert_eq!(store.read_file(path).unwrap(), b"one\ntwo\n{\"torn\nthree\n");
    }

    #[test]
    fn read_of_a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = LocalStore::new(dir.path()).read_file("/x/y.jsonl").unwrap_err();
        assert!(e.to_string().contains("y.jsonl"), "{e}");
    }
}
