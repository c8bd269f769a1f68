//! secure-ipc-jni: empty for now; the JNI bridge lands with the Android issue.
