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

tasks.test {
    useJUnitPlatform()
}
