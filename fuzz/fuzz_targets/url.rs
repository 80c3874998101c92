#![no_main]
//! The URL grammar (`url::parse`, which the server hands the path as it arrives), Smooth
//! Streaming manifests and fragments included: never panics, errors are 400s, and whatever
//! parses formats back to the same thing: `parse(format(r, e)) == (r, e)`.

use jit_origin::error::Error;
use jit_origin::plan::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    let Ok(path) = std::str::from_utf8(data) else { return };
    match url::parse(path) {
        Ok(parsed) => {
            let formatted = url::format(&parsed.resource, parsed.extension);
            match url::parse(&formatted) {
                Ok(again) => assert_eq!(again, parsed, "{path:?} formats as {formatted:?}"),
                Err(e) => panic!("{path:?} formats as {formatted:?}, which does not parse: {e}"),
            }
        }
        Err(Error::BadRequest(_)) => {}
        Err(other) => panic!("{path:?}: not a 400: {other:?}"),
    }
});
