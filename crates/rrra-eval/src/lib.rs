//! rrra-eval (under construction).
