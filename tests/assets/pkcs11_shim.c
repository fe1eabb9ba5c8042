/* A PKCS#11 module for tests that wraps a real one (SoftHSM2) and misbehaves on demand.
 *
 * REVOCD_SHIM_TARGET  path of the real module
 * REVOCD_SHIM_DIR     directory watched for control files:
 *   hang   C_Sign blocks while this file exists (an HSM that stops answering)
 *   gone   C_Sign and C_OpenSession fail with CKR_DEVICE_REMOVED (a removed token)
 *
 * Only the function list is touched: every other call goes straight to the real module.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long CK_RV;
typedef unsigned long CK_ULONG;

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_DEVICE_REMOVED 0x32UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x191UL
#define NFUNCS 68 /* PKCS#11 v2.40 function list */
#define IDX_INITIALIZE 0
#define IDX_GET_FUNCTION_LIST 3
#define IDX_OPEN_SESSION 12
#define IDX_SIGN 43

typedef struct {
    unsigned char major, minor;
} CK_VERSION;

typedef struct {
    CK_VERSION version;
    void *f[NFUNCS];
} FUNCTION_LIST;

typedef CK_RV (*init_fn)(void *);
typedef CK_RV (*open_fn)(CK_ULONG, CK_ULONG, void *, void *, CK_ULONG *);
typedef CK_RV (*sign_fn)(CK_ULONG, unsigned char *, CK_ULONG, unsigned char *, CK_ULONG *);
typedef CK_RV (*list_fn)(FUNCTION_LIST **);

static FUNCTION_LIST shim;
static FUNCTION_LIST *real;

static int present(const char *name) {
    char path[4096];
    const char *dir = getenv("REVOCD_SHIM_DIR");
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "/nonexistent", name);
    return stat(path, &st) == 0;
}

static CK_RV shim_initialize(void *args) {
    CK_RV rv = ((init_fn)real->f[IDX_INITIALIZE])(args);
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

static CK_RV shim_open_session(CK_ULONG slot, CK_ULONG flags, void *app, void *notify,
                               CK_ULONG *session) {
    if (present("gone")) return CKR_DEVICE_REMOVED;
    return ((open_fn)real->f[IDX_OPEN_SESSION])(slot, flags, app, notify, session);
}

static CK_RV shim_sign(CK_ULONG session, unsigned char *data, CK_ULONG len, unsigned char *sig,
                       CK_ULONG *sig_len) {
    while (present("hang")) usleep(10000);
    if (present("gone")) return CKR_DEVICE_REMOVED;
    return ((sign_fn)real->f[IDX_SIGN])(session, data, len, sig, sig_len);
}

CK_RV C_GetFunctionList(FUNCTION_LIST **out) {
    if (real == NULL) {
        const char *target = getenv("REVOCD_SHIM_TARGET");
        void *handle = target ? dlopen(target, RTLD_NOW | RTLD_LOCAL) : NULL;
        list_fn get = handle ? (list_fn)dlsym(handle, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
        memcpy(&shim, real, sizeof shim);
        shim.f[IDX_INITIALIZE] = (void *)shim_initialize;
        shim.f[IDX_GET_FUNCTION_LIST] = (void *)C_GetFunctionList;
        shim.f[IDX_OPEN_SESSION] = (void *)shim_open_session;
        shim.f[IDX_SIGN] = (void *)shim_sign;
    }
    *out = &shim;
    return CKR_OK;
}
