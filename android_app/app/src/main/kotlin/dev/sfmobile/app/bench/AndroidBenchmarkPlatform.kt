package dev.sfmobile.app.bench

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Build
import android.os.PowerManager
import dev.sfmobile.app.BuildConfig
import dev.sfmobile.app.bundles.BundleStore
import dev.sfmobile.app.engine.EngineFactory
import dev.sfmobile.core.Bundle
import dev.sfmobile.core.bench.BenchmarkPlatform
import dev.sfmobile.core.bench.DeviceInfo
import dev.sfmobile.core.bench.ThermalReading
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.DeviceMemory
import dev.sfmobile.core.device.LoadedEngine

/** The phone, as a benchmark session reads it: Build, ActivityManager, the battery intent, PowerManager. */
class AndroidBenchmarkPlatform(
    private val context: Context,
) : BenchmarkPlatform {
    private val store = BundleStore(context)

    override val appVersion: String = BuildConfig.VERSION_NAME

    override fun device(): DeviceInfo {
        val memory = store.memory()
        return DeviceInfo(
            manufacturer = Build.MANUFACTURER,
            model = Build.MODEL,
            soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL else "unknown",
            androidVersion = Build.VERSION.RELEASE,
            sdkInt = Build.VERSION.SDK_INT,
            totalMemoryMb = memory.totalBytes / MIB,
            availableMemoryMb = memory.availableBytes / MIB,
        )
    }

    /**
     * The sticky battery intent's EXTRA_TEMPERATURE is in tenths of a degree C; PowerManager's
     * thermal status runs from THERMAL_STATUS_NONE (0) to THERMAL_STATUS_SHUTDOWN (6).
     */
    override fun thermal(): ThermalReading {
        val battery = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val tenths = battery?.getIntExtra(BatteryManager.EXTRA_TEMPERATURE, Int.MIN_VALUE) ?: Int.MIN_VALUE
        val status = context.getSystemService(PowerManager::class.java).currentThermalStatus
        return ThermalReading(batteryC = if (tenths == Int.MIN_VALUE) null else tenths / 10.0, status = status)
    }

    override fun memory(): DeviceMemory = store.memory()

    override fun loadEngine(
        bundle: Bundle,
        backend: Backend,
        modelFiles: Map<String, String>,
    ): LoadedEngine = EngineFactory.load(context, bundle, backend, modelFiles)

    private companion object {
        const val MIB = 1024.0 * 1024.0
    }
}
