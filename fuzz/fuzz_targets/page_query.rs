//! Any query string of a page URL (`/alerts?…`, `/sensors/<id>?…`), read as the app reads
//! it on the server and in the browser. None panics; an accepted alert filter passes the
//! server's own checks and survives the trip through the URL the app writes for it; an
//! accepted time range has usable bounds; refusals are bounded sentences.
#![no_main]

use libfuzzer_sys::fuzz_target;

use thermoalert_pipeline::query::page::{AlertQuery, Range};

const NOW: f64 = 1_800_000_000.0;

fn sentence(e: &str) {
    assert!(!e.is_empty() && e.len() <= 512, "{e}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else { return };
    let all = |name: &str| -> Vec<String> {
        pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    };
    let first = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match AlertQuery::from_params(all) {
        Ok(q) => {
            assert_eq!(q.validate(), Ok(()));
            let url = q.to_query_string();
            let again = serde_urlencoded::from_str::<Vec<(String, String)>>(&url)
                .expect("the app writes URLs it can read");
            let get = |name: &str| -> Vec<String> {
                again.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
            };
            let back = AlertQuery::from_params(get)
                .unwrap_or_else(|e| panic!("the app refuses its own URL `{url}`: {e}"));
            assert_eq!(back, q, "{url}");
        }
        Err(e) => sentence(&e),
    }
    match Range::from_params(first) {
        Ok(range) => {
            let (from, to) = range.bounds(NOW).expect("an accepted range has bounds");
            assert!(from < to);
        }
        Err(e) => sentence(&e),
    }
});
