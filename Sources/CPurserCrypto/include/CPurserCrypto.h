#ifndef CPURSER_CRYPTO_H
#define CPURSER_CRYPTO_H

#include <stddef.h>

/// SHA-256 (FIPS 180-4, through OpenSSL's libcrypto) of the whole file behind `fd`, read
/// with pread from offset 0 to the end, so the fd's own offset is neither used nor moved.
/// Returns 0, or -1 with errno set.
int purser_sha256_fd(int fd, unsigned char digest[32]);

/// SHA-256 of a buffer (cache keys). Returns 0, or -1 with errno set.
int purser_sha256(const void *data, size_t length, unsigned char digest[32]);

#endif
