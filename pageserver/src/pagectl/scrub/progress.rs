//! The scrub's progress bar.

/// A progress bar on standard error when it is a terminal: tenants, then objects downloaded.
pub(super) struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub(super) fn new(enabled: bool, tenants: usize) -> Progress {
        use std::io::IsTerminal;
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(tenants as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .expect("a valid template"),
        );
        bar.set_message("tenants");
        Progress(Some(bar))
    }
    pub(super) fn tenant_done(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
    pub(super) fn add_objects(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.set_message("tenants and objects");
            b.inc_length(n as u64);
        }
    }
    pub(super) fn object_done(&self) {
        self.tenant_done();
    }
    pub(super) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
