package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.InputException
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

    companion object {
        const val MANIFEST = "manifest.json"

        /** Bytes of every regular file under [dir]. */
        fun sizeOnDisk(dir: File): Long = dir.walkTopDown().filter { it.isFile }.sumOf { it.length() }
    }
}
