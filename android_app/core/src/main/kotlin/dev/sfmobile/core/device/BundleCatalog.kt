package dev.sfmobile.core.device

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.BundleException
import dev.sfmobile.core.InputException
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.SfmobileException
import dev.sfmobile.core.Verification
import java.io.File

/** A bundle folder found under the bundles root: its [name] (the folder name), [dir] and size on disk. */
data class BundleEntry(
    val name: String,
    val dir: File,
    val bytes: Long,
)

/**
 * The bundles pushed into one folder (on the phone `files/bundles/` in the app's external files
 * folder, `/sdcard/Android/data/<package>/files/bundles/NAME/`). A bundle is a sub-folder that
 * holds a `manifest.json`; hidden folders (an interrupted export's `.NAME.partial-*`, see
 * export/README.md) are never bundles. Listing reads no file contents: verification happens when
 * a bundle is opened.
 */
class BundleCatalog(
    val root: File,
) {
    /** Every bundle under [root], by name; empty when the folder does not exist yet. */
    fun list(): List<BundleEntry> =
        (root.listFiles() ?: emptyArray())
            .filter { it.isDirectory && !it.name.startsWith(".") && File(it, MANIFEST).isFile }
            .sortedBy { it.name }
            .map { BundleEntry(it.name, it, sizeOnDisk(it)) }

    /**
     * The bundle called [name]: InputException for a name that is not a plain folder name,
     * BundleException naming the folder and the bundles there when it is missing.
     */
    fun find(name: String): BundleEntry {
        if (name.isBlank() || name.startsWith(".") || name.contains('/') || name.contains('\\')) {
            throw InputException("bundle name must be a folder name under ${root.path}, got '$name'")
        }
        val dir = File(root, name)
        if (!File(dir, MANIFEST).isFile) {
            val present = list().joinToString(", ") { it.name }.ifEmpty { "none" }
            throw BundleException(
                "no bundle '$name' in ${root.path} (no ${dir.path}/$MANIFEST); bundles there: $present",
            )
        }
        return BundleEntry(name, dir, sizeOnDisk(dir))
    }

    /**
     * Opens the bundle called [name] the way the app and the benchmark both must: find it, refuse
     * it with [checkMemory]'s message when it does not fit in [memory], then open and verify it.
     * [onFound] sees the entry before the checks, so a caller can report on a refused bundle.
     */
    fun open(
        name: String,
        memory: DeviceMemory,
        policy: MemoryPolicy = MemoryPolicy(),
        verification: Verification = Verification.SHA256,
        onFound: (BundleEntry) -> Unit = {},
    ): Bundle {
        val entry = find(name)
        onFound(entry)
        val fit = checkMemory(entry.name, entry.bytes, memory, policy)
        if (!fit.fits) throw BundleException(fit.message)
        return Bundle.open(entry.dir, verification)
    }

    /** What the app shows for each bundle before opening it: its manifest read, not verified. */
    fun summaries(): List<BundleSummary> = list().map { BundleSummary.of(it) }

    companion object {
        const val MANIFEST = "manifest.json"

        /** Bytes of every regular file under [dir]. */
        fun sizeOnDisk(dir: File): Long = dir.walkTopDown().filter { it.isFile }.sumOf { it.length() }
    }
}

/**
 * A bundle as the bundle list shows it: format, default settings and the guidance range it was
 * distilled for (null when unrecorded) from its manifest, or the [problem] that keeps it from
 * being used (an invalid manifest), without reading the model files.
 */
data class BundleSummary(
    val entry: BundleEntry,
    val format: String? = null,
    val defaultSteps: Int? = null,
    val defaultGuidance: Double? = null,
    val problem: String? = null,
    val distilledRange: ClosedFloatingPointRange<Double>? = null,
) {
    val name: String get() = entry.name

    companion object {
        fun of(entry: BundleEntry): BundleSummary =
            try {
                val file = File(entry.dir, BundleCatalog.MANIFEST)
                val manifest = Manifest.parse(file.readText(), file.path)
                BundleSummary(
                    entry,
                    format = manifest.component("unet").format,
                    defaultSteps = manifest.scheduler.defaultSteps,
                    defaultGuidance = manifest.scheduler.defaultGuidance,
                    distilledRange = manifest.guidance.distilledRange,
                )
            } catch (e: SfmobileException) {
                BundleSummary(entry, problem = e.message)
            } catch (e: java.io.IOException) {
                BundleSummary(entry, problem = "${entry.dir}/${BundleCatalog.MANIFEST}: not readable (${e.message})")
            }
    }
}
