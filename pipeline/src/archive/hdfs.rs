//! The archive on HDFS through hdrs (libhdfs over JNI). hdrs calls block: the caller runs
//! them off the async runtime. The process needs libjvm on its library path and the Hadoop
//! client jars in `CLASSPATH` (`scripts/services.sh env` prints both).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrs::{Client, ClientBuilder};

use super::{Store, StoreError};

/// Files a flush appends to at once (each append is mostly waiting on round trips).
const CONCURRENT_APPENDS: usize = 8;

/// A failed write makes a new client at most this often (each one keeps a few JVM threads).
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// An archive rooted at `/` of an HDFS file system.
///
/// A write interrupted by an outage leaves its file open under this client's lease, and
/// HDFS refuses the lease holder's own retries on that file until the lease expires (one
/// hour). So after a failed write the store switches to a new client, a different lease
/// holder: its retries make the NameNode recover the file (after the one-minute soft limit)
/// and then go through.
pub struct HdfsStore {
    url: String,
    session: Mutex<Session>,
    /// The length of each file as this store's last append left it, whole lines only: when
    /// a file still has that length its tail needs no check for a torn line (a read that
    /// costs a round trip to the DataNode per append).
    whole: Mutex<HashMap<String, u64>>,
}

/// Files remembered in `whole` at most (hours of a few thousand sensors); past that the
/// memory is dropped and the next appends check their tails again.
const REMEMBERED_FILES: usize = 50_000;

struct Session {
    client: Arc<Client>,
    since: Instant,
}

impl std::fmt::Debug for HdfsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsStore").field("url", &self.url).finish()
    }
}

impl HdfsStore {
    /// Connects to the NameNode at `url` (`hdfs://host:port`) and checks it answers.
    pub fn connect(url: &str) -> Result<HdfsStore, StoreError> {
        let wrap = |op| move |source| StoreError { op, path: url.to_owned(), source };
        let client = new_client(url).map_err(wrap("connect to"))?;
        // libhdfs connects lazily: ask for the root so an unreachable NameNode fails here.
        client.metadata("/").map_err(wrap("reach the NameNode at"))?;
        let session = Session { client: Arc::new(client), since: Instant::now() };
        Ok(HdfsStore {
            url: url.to_owned(),
            session: Mutex::new(session),
            whole: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self) -> Arc<Client> {
        Arc::clone(&self.session.lock().expect("hdfs session lock").client)
    }

    /// After a failed write: a new client, so that the next try is another lease holder.
    fn renew_after_failure(&self) {
        let mut session = self.session.lock().expect("hdfs session lock");
        if session.since.elapsed() < RENEW_EVERY {
            return;
        }
        // The old client is not closed: libhdfs shares nothing with it, and closing it could
        // fail a read another thread is doing with it.
        match new_client(&self.url) {
            Ok(client) => *session = Session { client: Arc::new(client), since: Instant::now() },
            Err(e) => tracing::warn!("hdfs: cannot make a new client yet: {e}"),
        }
    }

    fn append_with(&self, client: &Client, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let existing = match client.metadata(path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err("stat", path)(e)),
        };
        let mut f = match existing {
            Some(_) => {
                client.open_file().append(true).open(path).map_err(err("open for append", path))?
            }
            None => client
                .open_file()
                .write(true)
                .create(true)
                .open(path)
                .map_err(err("create", path))?,
        };
        let known_whole = existing.is_some_and(|len| self.whole_at(path) == Some(len));
        let mut written = bytes.len() as u64;
        if let Some(len) = existing.filter(|&len| len > 0 && !known_whole) {
            let mut last = [0u8; 1];
            let reader = client.open_file().read(true).open(path).map_err(err("open", path))?;
            reader.read_at(&mut last, len - 1).map_err(err("read", path))?;
            if last[0] != b'\n' {
                f.write_all(b"\n").map_err(err("write", path))?;
                written += 1;
            }
        }
        f.write_all(bytes).map_err(err("write", path))?;
        // Closing completes the block on the DataNode: the data is durable after this.
        f.try_close().map_err(err("close", path))?;
        if bytes.ends_with(b"\n") {
            self.remember_whole(path, existing.unwrap_or(0) + written);
        }
        Ok(())
    }

    fn whole_at(&self, path: &str) -> Option<u64> {
        self.whole.lock().expect("hdfs tails lock").get(path).copied()
    }

    fn remember_whole(&self, path: &str, len: u64) {
        let mut whole = self.whole.lock().expect("hdfs tails lock");
        if whole.len() >= REMEMBERED_FILES {
            whole.clear();
        }
        whole.insert(path.to_owned(), len);
    }
}

/// A client of its own (not libhdfs's cached, shared file system instance): its own lease.
fn new_client(url: &str) -> std::io::Result<Client> {
    ClientBuilder::new(url)
        .with_config("fs.hdfs.impl.disable.cache", "true")
        .with_config("dfs.client.block.write.locateFollowingBlock.initial.delay.ms", "10")
        .connect()
}

fn err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError { op, path: path.to_owned(), source }
}

impl Store for HdfsStore {
    fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let client = self.client();
        let tmp = format!("{path}.tmp");
        let written = (|| {
            let mut f = client
                .open_file()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(err("create", &tmp))?;
            f.write_all(bytes).map_err(err("write", &tmp))?;
            // Closing completes the blocks on the DataNode: the data is durable after this.
            f.try_close().map_err(err("close", &tmp))?;
            client.rename_file(&tmp, path).map_err(err("rename", path))
        })();
        if written.is_err() {
            self.renew_after_failure();
        }
        written
    }

    fn delete_file(&self, path: &str) -> Result<(), StoreError> {
        match self.client().remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("delete", path)(e)),
            _ => Ok(()),
        }
    }

    fn append_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let result = self.append_with(&self.client(), path, bytes);
        if result.is_err() {
            self.renew_after_failure();
        }
        result
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        let mut f = self.client().open_file().read(true).open(path).map_err(err("open", path))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).map_err(err("read", path))?;
        Ok(out)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let entries = match self.client().read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err("list", dir)(e)),
        };
        let mut names: Vec<String> = entries
            .into_inner()
            .filter_map(|m| m.path().rsplit('/').next().map(str::to_owned))
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        names.sort();
        Ok(names)
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn concurrent_appends(&self) -> usize {
        CONCURRENT_APPENDS
    }
}
