//! The VWED object and the worker loop.
