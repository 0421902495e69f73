//! rrra-runner (under construction).
