// The core: plain Kotlin/JVM, no Android imports, so the app's decisions and the runtime that
// must match Python bit for bit are built and tested on any JVM (CI uses kotlinc directly,
// see .ci/run; this file is for Android Studio and Gradle users).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(libs.gson)
    testImplementation(platform(libs.junit.bom))
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
}

// The shipped CLIP merges are the Python package's own file, copied onto the classpath (the
// repository holds no symlinks; kotlin_env.sh does the same for the kotlinc build).
tasks.processResources {
    from(file("../../sfmobile/data/bpe_simple_vocab_16e6.txt.gz")) { into("dev/sfmobile/core") }
}

tasks.test {
    useJUnitPlatform()
}
