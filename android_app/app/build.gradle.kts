// The sample app: Compose UI, a foreground generation service and the adb benchmark activity,
// over ONNX Runtime (CPU/XNNPACK, NNAPI, QNN HTP) and LiteRT (CPU, GPU, NPU). Every decision
// lives in :core; this module translates it to Android APIs. Built in Android Studio only: no
// Android SDK is reachable from the project's CI (README.md).
plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.compose)
}

android {
    namespace = "dev.sfmobile.app"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.sfmobile.sample"
        // Android 10: MediaStore's RELATIVE_PATH without storage permission, PowerManager's
        // thermal status; the QNN plugin needs 27, LiteRT's NPU path 31 (checked at run time).
        minSdk = 29
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // The NPU and GPU runtimes ship arm64 libraries only.
            abiFilters += "arm64-v8a"
        }
        buildConfigField("String", "LITERT_VERSION", "\"${libs.versions.litert.get()}\"")
        // The QNN runtime packed into the APK: QNN bundles compiled by another QNN release are refused.
        buildConfigField("String", "QNN_RUNTIME_VERSION", "\"${libs.versions.qnn.runtime.get()}\"")
    }

    buildTypes {
        release {
            // ONNX Runtime and LiteRT reach their Java classes from JNI: no shrinking.
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        compose = true
        buildConfig = true
    }

    packaging {
        jniLibs {
            // QNN's HTP loader opens libQnnHtp*.so by path: keep native libraries extracted.
            useLegacyPackaging = true
        }
    }
}

dependencies {
    implementation(project(":core"))

    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.ui.tooling.preview)
    implementation(libs.androidx.compose.material3)
    debugImplementation(libs.androidx.compose.ui.tooling)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(libs.androidx.lifecycle.viewmodel.compose)
    implementation(libs.androidx.core.ktx)
    implementation(libs.kotlinx.coroutines.android)

    implementation(libs.onnxruntime.android)
    implementation(libs.onnxruntime.android.qnn)
    implementation(libs.qnn.runtime)
    implementation(libs.litert)
}
