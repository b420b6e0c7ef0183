//! Failpoints (brief section 7) that fire in this crate.
//!
//! Built on the `fail` crate; they are compiled in only with the `testing` cargo feature, and
//! without it every failpoint is a no-op. A failpoint only does what production can do: return
//! an I/O error, pause, panic, or end the process. They are configured through the `fail`
//! crate's registry, which is one per process: the server's control (`pageserver::failpoints`,
//! with its `exit` and observable `pause` actions) reaches these too.
//!
//! | name | where |
//! |---|---|
//! | `layer-writer-before-finish` | start of a writer's `finish`: `return` fails it, the temp file is removed |
//! | `layer-fsync` | instead of the file's fsync: `return` acts as a failed fsync (I2) |
//! | `layer-publish-after-rename` | after the rename, before the directory fsync |
//! | `layer-write` | each write of a layer file: `return` fails it with `ENOSPC` (disk full) |
//!
//! The table of every failpoint, these and the server's, is `pageserver::failpoints`.

/// Evaluates a failpoint that, on `return`, makes the enclosing function return an I/O error
/// converted with `$err`.
macro_rules! io_failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(std::io::Error::other(concat!(
            "failpoint ",
            $name
        ))))
    };
}
pub(crate) use io_failpoint;
