//! TLS for peer links: certificates and OpenSSL contexts. Being written.
