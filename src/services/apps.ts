/**
 * What an app's stored settings mean (its categories, its pay type → channel map), for the doors: the
 * app rows come from deps.apps, their JSON columns are read here (store/apps.ts).
 */
export { appCategories, appChannelMap } from '../store/apps.js';
