//! AEX, the reference exchange. Filled by the exchange issue (#6); nothing here yet.
