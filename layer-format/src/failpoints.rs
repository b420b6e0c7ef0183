//! Failpoints (brief section 7) that live in this crate, and the helper that configures them.
//!
//! Built on the `fail` crate; they are compiled in only with the `testing` cargo feature, and
//! without it every failpoint is a no-op. A failpoint only does what production can do: return
//! an I/O error, pause, panic, or end the process.
//!
//! | name | where |
//! |---|---|
//! | `layer-writer-before-finish` | start of a writer's `finish`: `return` fails it, the temp file is removed |
//! | `layer-fsync` | instead of the file's fsync: `return` acts as a failed fsync (I2) |
//! | `layer-publish-after-rename` | after the rename, before the directory fsync |
//! | `layer-write` | each write of a layer file: `return` fails it with `ENOSPC` (disk full) |

/// Names of the failpoints of this crate.
pub const NAMES: &[&str] = &[
    "layer-writer-before-finish",
    "layer-fsync",
    "layer-publish-after-rename",
];

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

/// Configures failpoint `name` with `actions` in the `fail` crate's syntax, plus the action
/// `exit`, which ends the process at once (no destructors, no flushing), as a crash would.
/// An empty `actions` or `off` removes it. Only meaningful with the `testing` feature.
pub fn configure(name: &str, actions: &str) -> Result<(), String> {
    match actions.trim() {
        "" | "off" => {
            fail::remove(name);
            Ok(())
        }
        "exit" => fail::cfg_callback(name, || std::process::exit(77)),
        actions => fail::cfg(name, actions),
    }
}

/// Whether failpoints are compiled into this build.
pub const fn enabled() -> bool {
    cfg!(feature = "testing")
}
