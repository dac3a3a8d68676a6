//! Privacy masking for menwei (foundation): detectors of Chinese personal data that check the
//! checksums and structure that make them what they are (so order numbers and timestamps are left
//! alone), and the masking styles of common practice (GB/T 35273, GB/T 37964). The streaming JSON
//! rewriter and the gateway wiring build on these.

pub mod detect;
pub mod json;
pub mod style;

pub use detect::{detect, scan, Kind};
pub use json::{mask_text, mask_text_counted};
pub use style::{mask, Style};
