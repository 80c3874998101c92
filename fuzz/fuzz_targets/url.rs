#![no_main]
//! The URL grammar (`url::parse`): never panics, errors are 400s, and whatever parses formats
//! back to the same thing: `parse(percent_decode(format(r, e))) == (r, e)`, as the server
//! decodes the path before parsing it.

use jit_origin::error::Error;
use jit_origin::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    let Ok(path) = std::str::from_utf8(data) else { return };
    // The server parses the percent-decoded path; the raw text is a decoded path too.
    let decoded = url::percent_decode(path);
    for candidate in [Some(path), decoded.as_deref().ok()].into_iter().flatten() {
        match url::parse(candidate) {
            Ok(parsed) => {
                let formatted = url::format(&parsed.resource, parsed.extension);
                match url::percent_decode(&formatted).and_then(|p| url::parse(&p)) {
                    Ok(again) => assert_eq!(again, parsed, "{candidate:?} formats as {formatted:?}"),
                    Err(e) => panic!("{candidate:?} formats as {formatted:?}, which does not parse: {e}"),
                }
            }
            Err(Error::BadRequest(_)) => {}
            Err(other) => panic!("{candidate:?}: not a 400: {other:?}"),
        }
    }
});
