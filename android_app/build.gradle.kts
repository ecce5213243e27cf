// Plugins are declared here once (versions from gradle/libs.versions.toml) and applied per module.
// AGP 9 compiles Kotlin itself (built-in Kotlin); declaring the Kotlin plugins here pins the
// Kotlin Gradle plugin to the catalog's version for every module.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.jvm) apply false
    alias(libs.plugins.kotlin.compose) apply false
}
