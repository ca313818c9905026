//! anycastd: the site daemon and its operator CLI (work in progress).
