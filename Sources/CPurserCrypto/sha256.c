// SHA-256 through libcrypto's EVP interface (which picks the CPU's SHA instructions where
// it has them), for pinning plugin files and keying caches.
#include "CPurserCrypto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

enum { BUFFER_SIZE = 256 * 1024 };

// libcrypto sets no errno: a failure inside it is reported as EIO.
static int purser_sha256_failed(EVP_MD_CTX *ctx, unsigned char *buffer, int error) {
    EVP_MD_CTX_free(ctx);
    free(buffer);
    errno = error;
    return -1;
}

static ssize_t purser_pread(int fd, void *buffer, size_t size, off_t offset) {
    ssize_t got;
    do {
        got = pread(fd, buffer, size, offset);
    } while (got < 0 && errno == EINTR);
    return got;
}

int purser_sha256_fd(int fd, unsigned char digest[32]) {
    unsigned char *buffer = malloc(BUFFER_SIZE);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (buffer == NULL || ctx == NULL) return purser_sha256_failed(ctx, buffer, ENOMEM);
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) return purser_sha256_failed(ctx, buffer, EIO);
    off_t offset = 0;
    for (;;) {
        ssize_t got = purser_pread(fd, buffer, BUFFER_SIZE, offset);
        if (got < 0) return purser_sha256_failed(ctx, buffer, errno);
        if (got == 0) break;
        if (EVP_DigestUpdate(ctx, buffer, (size_t)got) != 1) return purser_sha256_failed(ctx, buffer, EIO);
        offset += got;
    }
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx, digest, &length) != 1 || length != 32) return purser_sha256_failed(ctx, buffer, EIO);
    EVP_MD_CTX_free(ctx);
    free(buffer);
    return 0;
}

int purser_sha256(const void *data, size_t length, unsigned char digest[32]) {
    unsigned int size = 0;
    if (EVP_Digest(data, length, digest, &size, EVP_sha256(), NULL) != 1 || size != 32) {
        errno = EIO;
        return -1;
    }
    return 0;
}
