//! Test-only crash points. With the `test-crash-points` feature, setting
//! `KUBEBOOT_TEST_CRASH=<phase>:<point>` kills the agent with SIGKILL at that
//! point, so tests can prove a crash anywhere resumes correctly. Without the
//! feature this compiles to nothing; `kubeboot image build` refuses a binary that
//! has them (cargo turns the feature on when kubeboot-tests is built in the same
//! command, so scripts build the shipped binary on its own).

#[cfg(feature = "test-crash-points")]
pub fn point(phase: kubeboot_core::status::Phase, point: &str) {
    if let Ok(want) = std::env::var("KUBEBOOT_TEST_CRASH") {
        if want == format!("{phase}:{point}") {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(not(feature = "test-crash-points"))]
#[inline(always)]
pub fn point(_phase: kubeboot_core::status::Phase, _point: &str) {}
