//! Hardware abstraction layer. Knows nothing about HTTP, redb or Python.
