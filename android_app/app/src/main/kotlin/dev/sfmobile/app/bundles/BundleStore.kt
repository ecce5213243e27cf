package dev.sfmobile.app.bundles

import android.app.ActivityManager
import android.content.Context
import dev.sfmobile.core.BundleException
import dev.sfmobile.core.device.BundleCatalog
import dev.sfmobile.core.device.DeviceMemory
import java.io.File

/**
 * Where `adb push` puts bundles: the app's external files folder, `files/bundles/NAME/`
 * (`/sdcard/Android/data/dev.sfmobile.sample/files/bundles/NAME/`), readable by the app without
 * any storage permission.
 */
class BundleStore(
    private val context: Context,
) {
    val root: File
        get() {
            val files = context.getExternalFilesDir(null) ?: throw BundleException("external storage is not available")
            return File(files, "bundles")
        }

    val catalog: BundleCatalog get() = BundleCatalog(root)

    /** The device's memory as ActivityManager reports it now. */
    fun memory(): DeviceMemory {
        val info = ActivityManager.MemoryInfo()
        context.getSystemService(ActivityManager::class.java).getMemoryInfo(info)
        return DeviceMemory(availableBytes = info.availMem, thresholdBytes = info.threshold, totalBytes = info.totalMem)
    }
}
