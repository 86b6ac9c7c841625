//! (execution side)
