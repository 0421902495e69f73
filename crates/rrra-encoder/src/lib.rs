//! rrra-encoder (under construction).
