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

    /// Appends `bytes` to `path`, closing a torn last line first; with `durable`, waits until
    /// the data (and a new file's directory entry) is on disk.
    fn append(&self, path: &str, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
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
        if !durable {
            return Ok(());
        }
        f.sync_data().map_err(err("sync", &target))?;
        if created {
            // A new file's directory entry must be durable too.
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync directory", dir))?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn sync_file_system(f: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `f` keeps open for the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_: &fs::File) -> std::io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
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
        self.append(path, bytes, true)
    }

    fn append_deferred(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.append(path, bytes, false)
    }

    /// `syncfs` of the archive's file system: every file and directory written through the
    /// page cache reaches the disk in one call, instead of one `fdatasync` (and one disk
    /// round trip) per file. On other systems, `sync`.
    fn sync(&self) -> Result<(), StoreError> {
        let root = fs::File::open(&self.root).map_err(err("open", &self.root))?;
        sync_file_system(&root).map_err(err("sync the file system of", &self.root))
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
    fn deferred_appends_close_torn_lines_too_and_one_sync_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("archive"));
        let (a, b) = ("/temperature_data/a/2026-01-01/00_w-000.jsonl", "/alerts/instant/b/x.jsonl");
        store.append_deferred(a, b"one\n{\"torn").unwrap();
        store.append_deferred(a, b"two\n").unwrap();
        store.append_deferred(b, b"alert\n").unwrap();
        store.sync().unwrap();
        assert_eq!(store.read_file(a).unwrap(), b"one\n{\"torn\ntwo\n");
        assert_eq!(store.read_file(b).unwrap(), b"alert\n");
        // Nothing to sync where nothing exists: a clear error, naming the directory.
        let e = LocalStore::new(dir.path().join("missing")).sync().unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn read_of_a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = LocalStore::new(dir.path()).read_file("/x/y.jsonl").unwrap_err();
        assert!(e.to_string().contains("y.jsonl"), "{e}");
    }
}
